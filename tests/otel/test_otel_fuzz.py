"""Hostile input: the protobuf and JSON decoders, and the endpoints, never answer 500.

The decoder properties run in-process (many examples); the HTTP ones go through the ASGI
app with the store behind it (fewer examples), so the rows that survive are inserted too.
"""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spyglass.otel.decode import JSON, PROTOBUF, SIGNALS, DecodeError, parse
from spyglass.otel.ingest import convert

REQUESTS = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}

# -- structured JSON in the shape of OTLP, with wrong types and junk sprinkled in -------------

hexes = st.text(alphabet="0123456789abcdefABCDEF", max_size=34)
junk = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                 st.floats(allow_nan=True), st.text(max_size=12), hexes)
scalars = st.one_of(junk, st.lists(junk, max_size=2), st.dictionaries(st.text(max_size=5), junk,
                                                                     max_size=2))
any_value = st.recursive(
    st.one_of(
        st.fixed_dictionaries({"stringValue": st.one_of(st.text(max_size=20), junk)}),
        st.fixed_dictionaries({"intValue": st.one_of(
            st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str), junk)}),
        st.fixed_dictionaries({"doubleValue": st.one_of(st.floats(), junk)}),
        st.fixed_dictionaries({"boolValue": junk}),
        st.fixed_dictionaries({"bytesValue": st.one_of(st.just("AAEC"), junk)}),
        scalars,
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries(
            {"values": st.lists(inner, max_size=3)})}),
        st.fixed_dictionaries({"kvlistValue": st.fixed_dictionaries({"values": st.lists(
            st.fixed_dictionaries({"key": st.text(max_size=6), "value": inner}), max_size=3)})}),
    ),
    max_leaves=6,
)
key_values = st.lists(st.fixed_dictionaries({"key": st.one_of(st.text(max_size=24), junk),
                                             "value": any_value}), max_size=4)
times = st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.integers(
    min_value=0, max_value=2**64 - 1).map(str), st.just("1700000000000000000"), junk)
ids = st.one_of(hexes, st.just("5B8EFFF798038103D269B633813FC60C"), st.just("eee19b7ec3c1b174"),
                junk)


def _optional(**fields: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


span = _optional(traceId=ids, spanId=ids, parentSpanId=ids, name=st.text(max_size=10),
                 kind=st.one_of(st.integers(-3, 9), junk), startTimeUnixNano=times,
                 endTimeUnixNano=times, attributes=key_values,
                 status=_optional(code=st.one_of(st.integers(-2, 5), junk), message=junk),
                 events=st.lists(_optional(timeUnixNano=times, name=junk, attributes=key_values),
                                 max_size=2),
                 links=st.lists(_optional(traceId=ids, spanId=ids), max_size=2),
                 unknown=scalars)
log_record = _optional(timeUnixNano=times, observedTimeUnixNano=times,
                       severityNumber=st.one_of(st.integers(-1, 30), junk),
                       severityText=junk, body=any_value, attributes=key_values,
                       traceId=ids, spanId=ids, eventName=junk, flags=junk)
number_point = _optional(timeUnixNano=times, startTimeUnixNano=times,
                         asDouble=st.one_of(st.floats(), junk), asInt=junk,
                         attributes=key_values,
                         exemplars=st.lists(_optional(traceId=ids, spanId=ids,
                                                      asDouble=junk, timeUnixNano=times),
                                            max_size=2))
hist_point = _optional(timeUnixNano=times, count=junk, sum=junk, bucketCounts=st.lists(junk,
                       max_size=3), explicitBounds=st.lists(junk, max_size=3), min=junk, max=junk)
exp_point = _optional(timeUnixNano=times, scale=junk, zeroCount=junk, positive=_optional(
    offset=junk, bucketCounts=st.lists(junk, max_size=3)), negative=_optional(offset=junk))
summary_point = _optional(timeUnixNano=times, count=junk, sum=junk, quantileValues=st.lists(
    _optional(quantile=junk, value=junk), max_size=2))
metric = st.one_of(
    _optional(name=junk, unit=junk, gauge=_optional(dataPoints=st.lists(number_point,
                                                                        max_size=2))),
    _optional(name=junk, sum=_optional(aggregationTemporality=junk, isMonotonic=junk,
                                       dataPoints=st.lists(number_point, max_size=2))),
    _optional(name=junk, histogram=_optional(dataPoints=st.lists(hist_point, max_size=2))),
    _optional(name=junk, exponentialHistogram=_optional(dataPoints=st.lists(exp_point,
                                                                            max_size=2))),
    _optional(name=junk, summary=_optional(dataPoints=st.lists(summary_point, max_size=2))),
)
resource = _optional(attributes=key_values)


def _envelope(outer: str, scope_key: str, items_key: str, item: Any) -> Any:
    scope = _optional(scope=_optional(name=junk, version=junk), **{
        items_key: st.one_of(st.lists(item, max_size=3), junk)})
    return _optional(**{outer: st.one_of(st.lists(_optional(
        resource=resource, **{scope_key: st.one_of(st.lists(scope, max_size=2), junk)}),
        max_size=2), junk)})


JSON_BODIES = {
    "traces": _envelope("resourceSpans", "scopeSpans", "spans", span),
    "logs": _envelope("resourceLogs", "scopeLogs", "logRecords", log_record),
    "metrics": _envelope("resourceMetrics", "scopeMetrics", "metrics", metric),
}


def _decode_and_convert(name: str, body: bytes, kind: str) -> None:
    signal = SIGNALS[name]
    try:
        message = parse(signal, body, kind)
    except DecodeError:
        return
    _, converted = convert(signal, message, 1)
    assert converted.accepted + converted.rejected >= 0


@pytest.mark.parametrize("name", sorted(SIGNALS))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_json_decoder_only_raises_decode_error(name: str, data: st.DataObject) -> None:
    document = data.draw(JSON_BODIES[name])
    _decode_and_convert(name, json.dumps(document).encode(), JSON)


@pytest.mark.parametrize("name", sorted(SIGNALS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300))
def test_protobuf_decoder_only_raises_decode_error(name: str, body: bytes) -> None:
    _decode_and_convert(name, body, PROTOBUF)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=200), cut=st.integers(0, 200), flip=st.integers(0, 255))
def test_mutated_valid_protobuf(body: bytes, cut: int, flip: int) -> None:
    """Valid requests with bytes flipped and cut: the nastiest protobuf inputs."""
    from pathlib import Path

    from spyglass.otel.decode import parse_json

    for name, fixture in (("traces", "trace"), ("logs", "logs"), ("metrics", "metrics")):
        text = (Path(__file__).parent / "fixtures" / f"{fixture}.json").read_bytes()
        valid = bytearray(parse_json(SIGNALS[name], text).SerializeToString())
        if valid:
            valid[cut % len(valid)] ^= flip
        mutated = bytes(valid[: len(valid) - cut % 7]) + body[:cut % 13]
        _decode_and_convert(name, mutated, PROTOBUF)


@pytest.fixture
def app_client(client, tenant_for):  # type: ignore[no-untyped-def]
    """The in-process ASGI client with a project key."""
    tenant = tenant_for(client.app, "fuzz")
    client.headers["x-spyglass-key"] = tenant.public_key
    return client


def test_endpoints_never_answer_500(app_client) -> None:  # type: ignore[no-untyped-def]
    statuses: set[int] = set()

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=st.data(), name=st.sampled_from(sorted(SIGNALS)),
           as_json=st.booleans(), raw=st.binary(max_size=120))
    def check(data: st.DataObject, name: str, as_json: bool, raw: bytes) -> None:
        if as_json:
            body = json.dumps(data.draw(JSON_BODIES[name])).encode()
            kind = JSON
        else:
            body, kind = raw, PROTOBUF
        resp = app_client.post(f"/v1/{name}", content=body, headers={"content-type": kind})
        statuses.add(resp.status_code)
        assert resp.status_code in (200, 400), resp.text

    check()
    assert 200 in statuses


def test_printable_garbage_json() -> None:
    for text in ("", "null", "0", '"x"', "[]", "{" * 2000 + "}" * 2000,
                 '{"resourceSpans": [' * 500 + "]}" * 500, string.printable):
        for name in SIGNALS:
            _decode_and_convert(name, text.encode(), JSON)
