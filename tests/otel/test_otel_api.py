"""The JSON API over stored traces: a trace by id, and services with RED figures."""

from __future__ import annotations

import datetime as dt
import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

PB = {"content-type": "application/x-protobuf"}


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _resource_spans(service: str, spans: list[Span]) -> ResourceSpans:
    return ResourceSpans(resource=Resource(attributes=[_kv("service.name", service),
                                                       _kv("host.name", f"{service}-1")]),
                         scope_spans=[ScopeSpans(spans=spans)])


def _user_token(live) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.models import Project, Role

    with live.runtime.db.session() as s:
        user = accounts.create_user(s, "viewer@example.com", "correct horse battery")
        project = s.get(Project, live.tenant.project_id)
        accounts.set_member(s, project.organization, user.email, Role.viewer)
        token = accounts.create_api_token(s, user, "api").token
    return {"Authorization": f"Bearer {token}"}


def test_trace_and_services(live) -> None:  # type: ignore[no-untyped-def]
    now = time.time_ns() - 60 * 10**9
    trace = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    root = Span(trace_id=trace, span_id=b"\x01" * 8, name="GET /cart", kind=2,
                start_time_unix_nano=now, end_time_unix_nano=now + 40_000_000,
                attributes=[_kv("http.method", "GET"), _kv("user.tier", "gold")])
    call = Span(trace_id=trace, span_id=b"\x02" * 8, parent_span_id=b"\x01" * 8, name="POST",
                kind=3, start_time_unix_nano=now + 1_000_000,
                end_time_unix_nano=now + 30_000_000, attributes=[_kv("peer.service", "cart")])
    served = Span(trace_id=trace, span_id=b"\x03" * 8, parent_span_id=b"\x02" * 8,
                  name="POST /rpc", kind=2, start_time_unix_nano=now + 2_000_000,
                  end_time_unix_nano=now + 29_000_000, status=Status(code=2, message="boom"))
    served.events.add(time_unix_nano=now + 3_000_000, name="exception",
                      attributes=[_kv("exception.type", "KeyError")])
    other = [Span(trace_id=bytes([9] * 15 + [i]), span_id=bytes([9] * 7 + [i]),
                  name="GET /cart", kind=2, start_time_unix_nano=now + i * 1000,
                  end_time_unix_nano=now + i * 1000 + (i + 1) * 1_000_000) for i in range(1, 9)]
    request = ExportTraceServiceRequest(resource_spans=[
        _resource_spans("frontend", [root, call, *other]), _resource_spans("cart", [served])])
    body = request.SerializeToString()
    for _ in range(2):  # a retried export stores spans twice; the API shows each once
        resp = httpx.post(live.url + "/v1/traces", content=body, headers=live.headers(**PB))
        assert resp.status_code == 200

    auth = _user_token(live)
    url = f"{live.url}/api/v1/projects/{live.tenant.project_id}"
    resp = httpx.get(f"{url}/traces/0AF7651916CD43DD8448EB211C80319C", headers=auth)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (data["span_count"], data["error_count"]) == (3, 1)
    assert data["services"] == ["cart", "frontend"] and data["duration_ns"] == 40_000_000
    spans = {s["name"]: s for s in data["spans"]}
    assert [s["name"] for s in data["spans"]] == ["GET /cart", "POST", "POST /rpc"]
    assert spans["GET /cart"]["attributes"] == {"http.request.method": "GET", "user.tier": "gold"}
    assert spans["GET /cart"]["resource"] == {"service.name": "frontend",
                                              "host.name": "frontend-1"}
    assert spans["POST"]["kind"] == "client" and spans["POST"]["parent_span_id"] == "01" * 8
    assert spans["POST /rpc"]["status"] == "error"
    assert spans["POST /rpc"]["events"][0]["attributes"] == {"exception.type": "KeyError"}
    assert spans["POST /rpc"]["resource"]["service.name"] == "cart"

    assert httpx.get(f"{url}/traces/{'f' * 32}", headers=auth).status_code == 404
    assert httpx.get(f"{url}/traces/xyz", headers=auth).status_code == 404
    assert httpx.get(f"{url}/traces/{'f' * 32}").status_code == 401
    assert httpx.get(f"{live.url}/api/v1/projects/999/services", headers=auth).status_code == 404

    resp = httpx.get(f"{url}/services", params={"minutes": 10}, headers=auth)
    assert resp.status_code == 200, resp.text
    services = {s["service"]: s for s in resp.json()["services"]}
    frontend, cart = services["frontend"], services["cart"]
    # Duplicated by the retry: 9 frontend entry spans twice, the client span is no entry.
    assert (frontend["spans"], frontend["requests"], frontend["errors"]) == (20, 18, 0)
    assert frontend["rate_per_s"] == round(18 / 600, 6)
    assert 1.0 <= frontend["p50_ms"] <= frontend["p95_ms"] <= frontend["p99_ms"] <= 40.0
    assert (cart["requests"], cart["errors"], cart["error_rate"]) == (2, 2, 1.0)
    assert cart["p50_ms"] == 27.0

    until = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    old = httpx.get(f"{url}/services", params={"until": until.isoformat()}, headers=auth)
    assert old.status_code == 200 and old.json()["services"] == []
