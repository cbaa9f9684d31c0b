"""The real OpenTelemetry Python SDK and its OTLP exporters against a running Spyglass."""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetrics,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetrics,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import (
    AlwaysOnExemplarFilter,
    Counter,
    Histogram,
    MeterProvider,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()

# The SDK's LoggingHandler is what applications use today; its successor lives in a package
# (opentelemetry-instrumentation-logging) we do not need for these tests.
pytestmark = pytest.mark.filterwarnings("ignore:`LoggingHandler`:DeprecationWarning")


def _provider(service: str, exporter: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                        "service.version": "1.0"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _backend(provider: TracerProvider) -> ThreadingHTTPServer:
    """The second service: an HTTP server that continues the caller's trace."""
    tracer = provider.get_tracer("backend.http", "0.1")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parent = PROPAGATOR.extract(carrier={k.lower(): v for k, v in self.headers.items()})
            other = SpanContext(0xABCDEF, 0x1234, is_remote=True,
                                trace_flags=TraceFlags(TraceFlags.SAMPLED))
            with tracer.start_as_current_span(
                "GET /stock/{sku}", context=parent, kind=SpanKind.SERVER,
                links=[Link(other, {"link.reason": "batch"})],
                attributes={"http.method": "GET", "http.route": "/stock/{sku}",
                            "http.status_code": 200, "url.path": self.path},
            ):
                with tracer.start_as_current_span(
                    "SELECT stock", kind=SpanKind.CLIENT,
                    attributes={"db.system": "postgresql", "db.statement": "SELECT 1"},
                ):
                    pass
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _attrs(row: dict[str, Any]) -> dict[str, str]:
    return dict(row["attributes"])


def test_traces_across_two_services_over_http(live) -> None:  # type: ignore[no-untyped-def]
    exporter = HttpSpans(endpoint=live.url + "/v1/traces", headers=live.headers())
    frontend = _provider("frontend", exporter)
    backend = _provider("backend", HttpSpans(endpoint=live.url + "/v1/traces",
                                             headers={"Authorization":
                                                      f"Bearer {live.tenant.public_key}"},
                                             compression=HttpCompression.Gzip))
    server = _backend(backend)
    tracer = frontend.get_tracer("frontend.http", "0.1")
    try:
        with tracer.start_as_current_span(
            "GET /checkout", kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "http.route": "/checkout",
                        "http.response.status_code": 500, "client.address": "10.1.2.3"},
        ) as root:
            with tracer.start_as_current_span(
                "GET", kind=SpanKind.CLIENT,
                attributes={"http.request.method": "GET", "peer.service": "backend"},
            ) as call:
                headers: dict[str, str] = {}
                PROPAGATOR.inject(headers)
                url = f"http://127.0.0.1:{server.server_port}/stock/42"
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
                    call.set_attribute("http.response.status_code", r.status)
            root.record_exception(ValueError("payment declined"))
            root.set_status(Status(StatusCode.ERROR, "payment declined"))
    finally:
        server.shutdown()
    frontend.force_flush()
    backend.force_flush()

    trace_id = format(root.get_span_context().trace_id, "032x")
    spans = {r["name"]: r for r in live.rows(
        "SELECT * FROM spans WHERE project_id = {p:UInt64} AND trace_id = {t:String}",
        p=live.tenant.project_id, t=trace_id)}
    assert set(spans) == {"GET /checkout", "GET", "GET /stock/{sku}", "SELECT stock"}
    root_row, call_row = spans["GET /checkout"], spans["GET"]
    served, query = spans["GET /stock/{sku}"], spans["SELECT stock"]
    # Parentage across the two services, through the traceparent header.
    assert root_row["parent_span_id"] == ""
    assert call_row["parent_span_id"] == root_row["span_id"]
    assert served["parent_span_id"] == call_row["span_id"]
    assert query["parent_span_id"] == served["span_id"]
    assert root_row["span_id"] == format(root.get_span_context().span_id, "016x")
    assert {r["service"] for r in (root_row, call_row)} == {"frontend"}
    assert {r["service"] for r in (served, query)} == {"backend"}
    assert (root_row["kind"], call_row["kind"], served["kind"]) == (2, 3, 2)
    # Old and new semantic-convention names land in the same typed columns.
    assert (root_row["http_method"], root_row["http_route"], root_row["http_status_code"]) == (
        "GET", "/checkout", 500)
    assert (served["http_method"], served["http_route"], served["http_status_code"]) == (
        "GET", "/stock/{sku}", 200)
    assert call_row["peer_service"] == "backend" and call_row["http_status_code"] == 200
    assert query["db_system"] == "postgresql"
    assert _attrs(query) == {"db.statement": "SELECT 1"}
    assert _attrs(root_row) == {"client.address": "10.1.2.3"}
    assert root_row["status_code"] == 2 and root_row["status_message"] == "payment declined"
    assert all(r["duration_ns"] > 0 and r["source"] == "otlp" for r in spans.values())
    (event,) = json.loads(root_row["events"])
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "payment declined"
    (link,) = json.loads(served["links"])
    assert link["trace_id"] == format(0xABCDEF, "032x") and link["span_id"] == format(0x1234, "016x")
    assert link["attributes"] == {"link.reason": "batch"}
    # Resources are stored once each, referenced by id.
    resources = {r["resource_id"]: dict(r["attributes"]) for r in live.rows(
        "SELECT resource_id, attributes FROM resources WHERE project_id = {p:UInt64}",
        p=live.tenant.project_id)}
    assert resources[root_row["resource_id"]]["service.name"] == "frontend"
    assert resources[served["resource_id"]]["service.name"] == "backend"
    assert resources[served["resource_id"]]["telemetry.sdk.language"] == "python"


def _otlp_json(message: Any, upper: bool = False) -> dict[str, Any]:
    """The OTLP JSON rendering of an SDK-made message: protobuf JSON with hex ids."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    hexed = base64.b64decode(value).hex()
                    node[key] = hexed.upper() if upper else hexed
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(data)
    return data


def test_sdk_traces_as_otlp_json(live) -> None:  # type: ignore[no-untyped-def]
    """The Python exporter speaks protobuf only, so JSON is the SDK's spans rendered per the
    OTLP JSON mapping (upper-case hex ids, enums as integers, int64 as strings)."""
    memory = InMemorySpanExporter()
    provider = _provider("json-service", memory)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER,
                                      attributes={"http.method": "POST", "n": 7}):
        with tracer.start_as_current_span("child", kind=SpanKind.CONSUMER) as child:
            child.add_event("retry", {"attempt": 2})
    spans = memory.get_finished_spans()
    body = _otlp_json(encode_spans(spans), upper=True)
    assert body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"].isupper()
    resp = httpx.post(live.url + "/v1/traces", json=body, headers=live.headers())
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {}
    rows = {r["name"]: r for r in live.rows("SELECT * FROM spans")}
    ctx = child.get_span_context()
    assert rows["child"]["trace_id"] == format(ctx.trace_id, "032x")
    assert rows["child"]["span_id"] == format(ctx.span_id, "016x")
    assert rows["child"]["parent_span_id"] == rows["parent"]["span_id"]
    assert rows["child"]["kind"] == 5 and rows["parent"]["http_method"] == "POST"
    assert _attrs(rows["parent"]) == {"n": "7"}
    assert json.loads(rows["child"]["events"])[0]["attributes"] == {"attempt": "2"}


def _points(live: Any) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in live.rows("SELECT * FROM metric_points ORDER BY timestamp"):
        out.setdefault((row["metric"], row["type"]), []).append(row)
    return out


def _record_metrics(provider: MeterProvider, tracer_provider: TracerProvider) -> None:
    meter = provider.get_meter("shop.metrics", "1.0")
    requests: Counter = meter.create_counter("http.requests", unit="1")
    inflight: UpDownCounter = meter.create_up_down_counter("http.inflight")
    latency: Histogram = meter.create_histogram("http.duration", unit="ms")
    sizes: Histogram = meter.create_histogram("payload.size", unit="By")
    meter.create_observable_gauge(
        "cpu.usage", callbacks=[lambda options: [_observation(0.42, {"cpu": "0"})]])
    tracer = tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("work"):
        for status in ("200", "200", "500"):
            requests.add(1, {"status": status})
        inflight.add(3)
        inflight.add(-1)
        for ms in (3.0, 12.0, 480.0):
            latency.record(ms, {"route": "/a"})
        for size in (100, 2000, 30000, 1):
            sizes.record(size)


def _observation(value: float, attrs: dict[str, str]) -> Any:
    from opentelemetry.metrics import Observation

    return Observation(value, attrs)


def test_metrics_of_every_kind_over_http(live) -> None:  # type: ignore[no-untyped-def]
    tracer_provider = TracerProvider()
    reader = PeriodicExportingMetricReader(
        HttpMetrics(endpoint=live.url + "/v1/metrics", headers=live.headers()),
        export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": "metrics-service"}),
        metric_readers=[reader], exemplar_filter=AlwaysOnExemplarFilter(),
        views=[View(instrument_name="payload.size",
                    aggregation=ExponentialBucketHistogramAggregation(max_size=20))])
    _record_metrics(provider, tracer_provider)
    assert provider.force_flush()
    points = _points(live)
    provider.shutdown()  # exports once more (cumulative), after we read the first export

    (ok, err) = sorted(points[("http.requests", "sum")], key=lambda r: -r["value"])
    assert (ok["value"], err["value"]) == (2.0, 1.0)
    assert dict(ok["attributes"]) == {"status": "200"} and ok["service"] == "metrics-service"
    assert ok["temporality"] == 2 and ok["monotonic"] is True
    assert ok["start_time"] <= ok["timestamp"] and ok["start_time"].year > 2000
    assert ok["series_id"] != err["series_id"]
    exemplar = json.loads(ok["exemplars"])[0]
    assert len(exemplar["trace_id"]) == 32 and len(exemplar["span_id"]) == 16

    (inflight,) = points[("http.inflight", "sum")]
    assert inflight["value"] == 2.0 and inflight["monotonic"] is False

    (gauge,) = points[("cpu.usage", "gauge")]
    assert gauge["value"] == 0.42 and gauge["temporality"] == 0

    (hist,) = points[("http.duration", "histogram")]
    assert hist["count"] == 3 and hist["sum"] == 495.0
    assert (hist["min"], hist["max"]) == (3.0, 480.0)
    assert [float(b) for b in hist["bounds"]][:3] == [0.0, 5.0, 10.0]
    counts = [int(c) for c in hist["bucket_counts"]]
    assert len(counts) == len(hist["bounds"]) + 1 and sum(counts) == 3
    assert len(json.loads(hist["exemplars"])) >= 1

    (exp,) = points[("payload.size", "exponential_histogram")]
    assert exp["count"] == 4 and exp["sum"] == 32101.0
    assert sum(int(c) for c in exp["positive_counts"]) + exp["zero_count"] == 4
    assert exp["scale"] <= 20 and exp["unit"] == "By"


def test_grpc_exporters_traces_metrics_logs(live) -> None:  # type: ignore[no-untyped-def]
    import grpc

    key = (("x-spyglass-key", live.tenant.public_key),)
    provider = _provider("grpc-service", GrpcSpans(
        endpoint=live.grpc_target, insecure=True, headers=key,
        compression=grpc.Compression.Gzip))
    tracer = provider.get_tracer("g")
    with tracer.start_as_current_span("grpc-root", attributes={"db.system.name": "redis"}):
        with tracer.start_as_current_span("grpc-child"):
            pass
    assert provider.force_flush()

    delta = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
    reader = PeriodicExportingMetricReader(
        GrpcMetrics(endpoint=live.grpc_target, insecure=True, headers=key,
                    preferred_temporality=delta), export_interval_millis=3_600_000)
    meters = MeterProvider(resource=Resource.create({"service.name": "grpc-service"}),
                           metric_readers=[reader])
    meters.get_meter("m").create_counter("jobs.done").add(5, {"queue": "q1"})
    assert meters.force_flush()

    logs = LoggerProvider(resource=Resource.create({"service.name": "grpc-service"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(
        GrpcLogs(endpoint=live.grpc_target, insecure=True, headers=key)))
    logger = logging.getLogger("test.grpc.logs")
    handler = LoggingHandler(logger_provider=logs)
    logger.addHandler(handler)
    try:
        with tracer.start_as_current_span("logging-span") as span:
            logger.warning("stock low for %s", "sku-1")
    finally:
        logger.removeHandler(handler)
    logs.force_flush()
    provider.force_flush()

    rows = {r["name"]: r for r in live.rows("SELECT * FROM spans")}
    assert rows["grpc-child"]["parent_span_id"] == rows["grpc-root"]["span_id"]
    assert rows["grpc-root"]["db_system"] == "redis" and rows["grpc-root"]["service"] == (
        "grpc-service")
    (point,) = live.rows("SELECT * FROM metric_points")
    assert (point["metric"], point["value"], point["temporality"]) == ("jobs.done", 5.0, 1)
    meters.shutdown()
    (log,) = live.rows("SELECT * FROM logs")
    assert log["body"] == "stock low for sku-1" and log["severity_text"] == "WARN"
    assert log["severity_number"] == 13
    assert log["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert log["span_id"] == format(span.get_span_context().span_id, "016x")


def test_logs_with_trace_context_over_http(live) -> None:  # type: ignore[no-untyped-def]
    logs = LoggerProvider(resource=Resource.create({"service.name": "log-service"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(
        HttpLogs(endpoint=live.url + "/v1/logs", headers=live.headers())))
    tracer = TracerProvider().get_tracer("t")
    logger = logging.getLogger("test.http.logs")
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(logger_provider=logs)
    logger.addHandler(handler)
    try:
        logger.info("outside any span", extra={"order.id": 17})
        with tracer.start_as_current_span("checkout") as span:
            try:
                raise KeyError("sku-9")
            except KeyError:
                logger.exception("checkout failed")
    finally:
        logger.removeHandler(handler)
    logs.force_flush()
    rows = {r["body"]: r for r in live.rows("SELECT * FROM logs")}
    outside, failed = rows["outside any span"], rows["checkout failed"]
    assert outside["trace_id"] == "" and outside["severity_number"] == 9
    assert dict(outside["attributes"])["order.id"] == "17"
    assert outside["service"] == "log-service" and outside["source"] == "otlp"
    assert failed["severity_text"] == "ERROR" and failed["severity_number"] == 17
    assert failed["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert failed["span_id"] == format(span.get_span_context().span_id, "016x")
    attrs = dict(failed["attributes"])
    assert attrs["exception.type"] == "KeyError" and "sku-9" in attrs["exception.message"]
    assert "Traceback" in attrs["exception.stacktrace"]
    assert failed["timestamp"] <= failed["observed"] or failed["observed"].year > 2000


def test_in_memory_reader_sanity() -> None:
    """Guard for the metric tests above: the SDK makes the kinds we expect of it."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=[View(
        instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())])
    _record_metrics(provider, TracerProvider())
    data = reader.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics}
    assert names == {"http.requests", "http.inflight", "http.duration", "payload.size",
                     "cpu.usage"}
