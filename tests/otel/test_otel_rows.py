"""Conversion of OTLP messages into rows: values, semantic conventions, limits."""

from __future__ import annotations

import json
import math

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from spyglass.otel.decode import SIGNALS, parse_json
from spyglass.otel.resources import resource_id
from spyglass.otel.rows import MAX_VALUE, metrics_table, spans_table, value_text

T0 = 1_700_000_000 * 10**9


def kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def one_span(*attrs: KeyValue, resource: Resource | None = None) -> dict:
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=resource, scope_spans=[ScopeSpans(spans=[Span(
            trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op", start_time_unix_nano=T0,
            end_time_unix_nano=T0 + 5, attributes=list(attrs))])])])
    converted = spans_table(req, 9)
    assert converted.accepted == 1
    return converted.table.to_pylist()[0]


def test_value_text() -> None:
    assert value_text(AnyValue(string_value="x")) == "x"
    assert value_text(AnyValue(int_value=-(2**63))) == str(-(2**63))
    assert value_text(AnyValue(double_value=2.0)) == "2"
    assert value_text(AnyValue(double_value=0.1)) == "0.1"
    assert value_text(AnyValue(double_value=math.inf)) == "inf"
    assert value_text(AnyValue(bool_value=False)) == "false"
    assert value_text(AnyValue(bytes_value=b"\x00\x01")) == '"AAE="'
    nested = AnyValue(kvlist_value=KeyValueList(values=[
        kv("a", array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(
            double_value=math.nan)]))]))
    assert json.loads(value_text(nested)) == {"a": [1, "nan"]}
    assert value_text(AnyValue()) == ""


def test_semantic_conventions_old_and_new_names() -> None:
    new = one_span(kv("http.request.method", string_value="PATCH"),
                   kv("http.response.status_code", int_value=204),
                   kv("db.system.name", string_value="mysql"),
                   kv("http.route", string_value="/x/{id}"), kv("peer.service", string_value="p"),
                   kv("other", string_value="kept"))
    assert (new["http_method"], new["http_status_code"], new["db_system"]) == (
        "PATCH", 204, "mysql")
    assert (new["http_route"], new["peer_service"]) == ("/x/{id}", "p")
    assert dict(new["attributes"]) == {"other": "kept"}
    old = one_span(kv("http.method", string_value="GET"),
                   kv("http.status_code", string_value="503"), kv("db.system", string_value="pg"))
    assert (old["http_method"], old["http_status_code"], old["db_system"]) == ("GET", 503, "pg")
    odd = one_span(kv("http.status_code", string_value="abc"),
                   kv("http.response.status_code", int_value=10**9))
    assert odd["http_status_code"] == 0


def test_duplicate_keys_and_long_values() -> None:
    row = one_span(kv("k", string_value="first"), kv("k", string_value="second"),
                   kv("", string_value="empty key"), kv("big", string_value="x" * (MAX_VALUE + 5)))
    attrs = dict(row["attributes"])
    assert attrs["k"] == "second" and attrs[""] == "empty key"
    assert len(attrs["big"]) < MAX_VALUE + 20 and attrs["big"].endswith("[truncated]")


def test_resource_fingerprint_and_service() -> None:
    resource = Resource(attributes=[kv("service.name", string_value="svc"),
                                    kv("host.name", string_value="h")])
    row = one_span(resource=resource)
    assert row["service"] == "svc"
    assert row["resource_id"] == resource_id({"host.name": "h", "service.name": "svc"})
    assert one_span()["service"] == "unknown_service" and one_span()["resource_id"] == 0


def test_summary_and_negative_exponential_buckets() -> None:
    point = m.SummaryDataPoint(time_unix_nano=T0, count=4, sum=10.0, quantile_values=[
        m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=2.0),
        m.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=7.5)])
    exp = m.ExponentialHistogramDataPoint(
        time_unix_nano=T0, start_time_unix_nano=T0 - 10, count=3, scale=-2, zero_count=0,
        zero_threshold=1e-9,
        negative=m.ExponentialHistogramDataPoint.Buckets(offset=-3, bucket_counts=[1, 2]))
    req = ExportMetricsServiceRequest(resource_metrics=[m.ResourceMetrics(scope_metrics=[
        m.ScopeMetrics(metrics=[
            m.Metric(name="rpc.latency", summary=m.Summary(data_points=[point])),
            m.Metric(name="temp", exponential_histogram=m.ExponentialHistogram(
                aggregation_temporality=1, data_points=[exp])),
            m.Metric(name="no.data"),
            m.Metric(name="late", gauge=m.Gauge(data_points=[m.NumberDataPoint(as_int=3)])),
        ])])])
    converted = metrics_table(req, 1)
    assert converted.rejected == 2
    assert set(converted.reasons) == {"metric without data", "timestamp out of range"}
    rows = {r["metric"]: r for r in converted.table.to_pylist()}
    summary = rows["rpc.latency"]
    assert (summary["type"], summary["count"], summary["sum"]) == ("summary", 4, 10.0)
    assert (summary["quantiles"], summary["quantile_values"]) == (["0.5", "0.99"], ["2", "7.5"])
    assert math.isnan(summary["value"]) and summary["temporality"] == 0
    temp = rows["temp"]
    assert (temp["scale"], temp["negative_offset"], temp["negative_counts"]) == (-2, -3, ["1", "2"])
    assert math.isnan(temp["sum"]) and math.isnan(temp["min"]) and temp["zero_threshold"] == 1e-9
    assert temp["temporality"] == 1


def test_json_mapping_details() -> None:
    """int64 as numbers or strings, enums as integers or names, ids in any case."""
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5B8EFFF798038103d269b633813fc60c", "spanId": "EEE19B7EC3C1B174",
         "parentSpanId": "", "name": "a", "kind": "SPAN_KIND_CLIENT",
         "startTimeUnixNano": 1700000000000000000, "endTimeUnixNano": "1700000000000000100",
         "attributes": [{"key": "n", "value": {"intValue": 12}},
                        {"key": "s", "value": {"intValue": "-5"}}],
         "status": {"code": 2}, "someFutureField": [1, 2]},
    ]}]}]}
    message = parse_json(SIGNALS["traces"], json.dumps(body).encode())
    (row,) = spans_table(message, 1).table.to_pylist()
    assert row["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert row["span_id"] == "eee19b7ec3c1b174" and row["parent_span_id"] == ""
    assert (row["kind"], row["status_code"], row["duration_ns"]) == (3, 2, 100)
    assert dict(row["attributes"]) == {"n": "12", "s": "-5"}
