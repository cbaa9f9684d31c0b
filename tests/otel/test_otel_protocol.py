"""OTLP/HTTP and OTLP/gRPC protocol rules: example payloads, auth, errors, partial success."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

FIXTURES = Path(__file__).parent / "fixtures"
PB = {"content-type": "application/x-protobuf"}
JS = {"content-type": "application/json"}


def _post(live: Any, path: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(live.url + path, content=body, headers=live.headers(**headers))


def _span(trace: bytes = b"\x01" * 16, span: bytes = b"\x02" * 8, **kw: Any) -> Span:
    kw.setdefault("start_time_unix_nano", 1_700_000_000 * 10**9)
    kw.setdefault("end_time_unix_nano", 1_700_000_001 * 10**9)
    return Span(trace_id=trace, span_id=span, name=kw.pop("name", "op"), **kw)


def _request(*spans: Span) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        scope_spans=[ScopeSpans(spans=list(spans))])])


def test_example_payloads_of_opentelemetry_proto(live) -> None:  # type: ignore[no-untyped-def]
    for path, name in (("/v1/traces", "trace"), ("/v1/metrics", "metrics"),
                       ("/v1/logs", "logs"), ("/v1/logs", "events")):
        resp = _post(live, path, (FIXTURES / f"{name}.json").read_bytes(), **JS)
        assert resp.status_code == 200, (name, resp.text)
        assert resp.json() == {}

    (span,) = live.rows("SELECT * FROM spans")
    assert span["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert span["span_id"] == "eee19b7ec3c1b174"
    assert span["parent_span_id"] == "eee19b7ec3c1b173"
    assert (span["name"], span["kind"], span["service"]) == ("I'm a server span", 2, "my.service")
    assert (span["scope_name"], span["scope_version"]) == ("my.library", "1.0.0")
    assert span["duration_ns"] == 1_000_000_000
    assert str(span["start"]) == "2018-12-13 14:51:00"
    assert dict(span["attributes"]) == {"my.span.attr": "some value"}

    points = {p["metric"]: p for p in live.rows("SELECT * FROM metric_points")}
    assert set(points) == {"my.counter", "my.gauge", "my.histogram", "my.exponential.histogram"}
    counter = points["my.counter"]
    assert (counter["type"], counter["value"], counter["temporality"], counter["monotonic"]) == (
        "sum", 5.0, 1, True)
    assert points["my.gauge"]["value"] == 10.0
    hist = points["my.histogram"]
    assert (hist["count"], hist["sum"], hist["min"], hist["max"]) == (2, 2.0, 0.0, 2.0)
    assert (list(hist["bounds"]), list(hist["bucket_counts"])) == (["1"], ["1", "1"])
    exp = points["my.exponential.histogram"]
    assert (exp["count"], exp["sum"], exp["scale"], exp["zero_count"]) == (3, 10.0, 0, 1)
    assert (exp["positive_offset"], list(exp["positive_counts"])) == (1, ["0", "2"])
    assert dict(exp["attributes"]) == {"my.exponential.histogram.attr": "some value"}

    logs = {r["event_name"]: r for r in live.rows("SELECT * FROM logs")}
    record, event = logs[""], logs["browser.page_view"]
    assert record["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert record["span_id"] == "eee19b7ec3c1b174"
    assert (record["severity_number"], record["severity_text"]) == (10, "Information")
    assert record["body"] == "Example log record"
    attrs = dict(record["attributes"])
    assert attrs["boolean.attribute"] == "true" and attrs["int.attribute"] == "10"
    assert attrs["double.attribute"] == "637.704"
    assert json.loads(attrs["array.attribute"]) == ["many", "values"]
    assert json.loads(attrs["map.attribute"]) == {"some.map.key": "some value"}
    assert json.loads(event["body"])["url"].startswith("https://www.guidgenerator.com")
    assert event["trace_id"] == "" and event["severity_number"] == 9

    resources = live.rows("SELECT DISTINCT resource_id, service FROM resources")
    assert resources == [{"resource_id": span["resource_id"], "service": "my.service"}]


def test_example_payloads_in_protobuf_and_gzip(live) -> None:  # type: ignore[no-untyped-def]
    from spyglass.otel.decode import SIGNALS, parse_json

    message = parse_json(SIGNALS["traces"], (FIXTURES / "trace.json").read_bytes())
    body = gzip.compress(message.SerializeToString())
    resp = _post(live, "/v1/traces", body, **PB, **{"content-encoding": "gzip"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(resp.content) == ExportTraceServiceResponse()
    (span,) = live.rows("SELECT trace_id, span_id FROM spans")
    assert span == {"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174"}


def test_keys(live) -> None:  # type: ignore[no-untyped-def]
    body = _request(_span()).SerializeToString()
    url = live.url + "/v1/traces"
    missing = httpx.post(url, content=body, headers=PB)
    assert missing.status_code == 401
    wrong = httpx.post(url, content=body, headers={**PB, "x-spyglass-key": "0" * 32})
    assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/x-protobuf"
    bearer = httpx.post(url, content=body, headers={
        **PB, "authorization": f"Bearer {live.tenant.public_key}"})
    assert bearer.status_code == 200
    wrong_json = httpx.post(url, content=b"{}", headers={**JS, "x-spyglass-key": "nope"})
    assert wrong_json.status_code == 401 and "not an active" in wrong_json.json()["message"]
    assert live.store.count("spans") == 1

    with grpc.insecure_channel(live.grpc_target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        request = _request(_span(span=b"\x03" * 8))
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(request, metadata=(("x-spyglass-key", "wrong"),))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(request)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.Export(request, metadata=(
            ("authorization", f"Bearer {live.tenant.public_key}"),))
        assert reply == trace_service_pb2.ExportTraceServiceResponse()
    assert live.store.count("spans") == 2

    # Revoking the key through the API takes effect at once, though the key was cached.
    token = _owner_token(live)
    keys = httpx.get(f"{live.url}/api/v1/projects/{live.tenant.project_id}/keys",
                     headers=token).json()
    (key,) = [k for k in keys if k["public_key"] == live.tenant.public_key]
    revoked = httpx.delete(f"{live.url}/api/v1/projects/{live.tenant.project_id}/keys/{key['id']}",
                           headers=token)
    assert revoked.status_code == 200, revoked.text
    assert _post(live, "/v1/traces", body, **PB).status_code == 401


def _owner_token(live: Any) -> dict[str, str]:
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.models import Project, Role

    with live.runtime.db.session() as s:
        user = accounts.create_user(s, "owner@example.com", "correct horse battery")
        accounts.set_member(s, s.get(Project, live.tenant.project_id).organization, user.email,
                            Role.owner)
        return {"Authorization": f"Bearer {accounts.create_api_token(s, user, 't').token}"}


def test_malformed_and_refused_bodies(live) -> None:  # type: ignore[no-untyped-def]
    assert _post(live, "/v1/traces", b"\xff\xff\xff", **PB).status_code == 400
    bad_json = _post(live, "/v1/logs", b"{not json", **JS)
    assert bad_json.status_code == 400 and bad_json.json()["code"] == 3
    assert _post(live, "/v1/metrics", b"[1, 2]", **JS).status_code == 400
    assert _post(live, "/v1/traces", b'{"resourceSpans": 5}', **JS).status_code == 400
    assert _post(live, "/v1/traces", b"{}", **{"content-type": "text/plain"}).status_code == 415
    assert _post(live, "/v1/traces", b"{}", **JS, **{"content-encoding": "lz4"}).status_code == (
        415)
    # A gzip bomb: 65 MiB of zeros, refused once inflating passes 64 MiB.
    bomb = gzip.compress(b"\0" * (65 * 1024 * 1024), compresslevel=9)
    resp = _post(live, "/v1/traces", bomb, **PB, **{"content-encoding": "gzip"})
    assert resp.status_code == 413
    # Empty requests and unknown JSON fields are fine.
    assert _post(live, "/v1/traces", b"", **PB).status_code == 200
    ok = _post(live, "/v1/logs", b'{"resourceLogs": [], "futureField": {"x": 1}}', **JS)
    assert ok.status_code == 200 and ok.json() == {}
    assert live.store.count("spans") == 0

    with grpc.insecure_channel(live.grpc_target) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as info:
            export(b"\xff\xff\xff", metadata=live.headers().items())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_partial_success(live) -> None:  # type: ignore[no-untyped-def]
    good = _span(name="good")
    request = _request(
        good,
        _span(trace=b"\x00" * 16, name="zero trace"),
        _span(span=b"\x01\x02", name="short span id"),
        _span(span=b"\x05" * 8, parent_span_id=b"\x01", name="bad parent"),
        _span(span=b"\x06" * 8, start_time_unix_nano=0, name="no start"),
    )
    resp = _post(live, "/v1/traces", request.SerializeToString(), **PB)
    assert resp.status_code == 200
    reply = ExportTraceServiceResponse.FromString(resp.content)
    assert reply.partial_success.rejected_spans == 4
    assert "invalid trace_id (1)" in reply.partial_success.error_message
    assert [r["name"] for r in live.rows("SELECT name FROM spans")] == ["good"]

    # JSON: ids that are not hex are refused item by item, in JSON.
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000000000000", "body": {"stringValue": "kept"},
         "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174"},
        {"timeUnixNano": 1700000000000000000, "body": {"stringValue": "bad id"},
         "traceId": "not-hex"},
        {"timeUnixNano": "1", "body": {"stringValue": "too old"}},
    ]}]}]}
    resp = _post(live, "/v1/logs", json.dumps(logs).encode(), **JS)
    assert resp.status_code == 200
    assert resp.json() == {"partialSuccess": {
        "rejectedLogRecords": "2",
        "errorMessage": "2 rejected: invalid trace_id (1), timestamp out of range (1)"}}
    (row,) = live.rows("SELECT body, trace_id, span_id FROM logs")
    assert row == {"body": "kept", "trace_id": "5b8efff798038103d269b633813fc60c",
                   "span_id": "eee19b7ec3c1b174"}
    assert ExportLogsServiceResponse().ByteSize() == 0


@pytest.fixture
def tiny_writer(settings):  # type: ignore[no-untyped-def]
    settings.writer_max_pending_rows = 10
    return settings


def test_overload_answers_429_with_retry_after(tiny_writer, live) -> None:  # type: ignore[no-untyped-def]
    spans = [_span(span=i.to_bytes(8, "big"), name=f"s{i}") for i in range(1, 40)]
    resp = _post(live, "/v1/traces", _request(*spans).SerializeToString(), **PB)
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    assert live.store.count("spans") == 0
    with grpc.insecure_channel(live.grpc_target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(_request(*spans), metadata=live.headers().items())
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_grpc_port_taken_leaves_http_working(settings, tenant_for) -> None:  # type: ignore[no-untyped-def]
    import socket

    from fastapi.testclient import TestClient

    from spyglass.app import create_app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.otlp_grpc_port = taken.getsockname()[1]
        with TestClient(create_app(settings), base_url=settings.public_url) as client:
            tenant = tenant_for(client.app)
            resp = client.post("/v1/traces", content=_request(_span()).SerializeToString(),
                               headers={**PB, "x-spyglass-key": tenant.public_key})
            assert resp.status_code == 200
