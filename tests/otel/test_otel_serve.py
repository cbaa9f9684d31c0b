"""``spyglass serve`` as a real subprocess: OTLP over gRPC and HTTP, read back through the API."""

from __future__ import annotations

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind


def test_serve_accepts_otlp_grpc_and_http(settings, server_factory, tenant_for) -> None:  # type: ignore[no-untyped-def]
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.db import Database
    from spyglass.kernel.meta.models import Project, Role

    grpc_port = settings.otlp_grpc_port  # a free port (tests/otel/conftest.py)
    server = server_factory()
    db = Database(settings.metadata_url)
    tenant = tenant_for(db, "serve")
    with db.session() as s:
        user = accounts.create_user(s, "reader@example.com", "correct horse battery")
        accounts.set_member(s, s.get(Project, tenant.project_id).organization, user.email,
                            Role.viewer)
        token = accounts.create_api_token(s, user, "t").token
    db.close()

    provider = TracerProvider(resource=Resource.create({"service.name": "edge"}))
    provider.add_span_processor(SimpleSpanProcessor(GrpcSpans(
        endpoint=f"127.0.0.1:{grpc_port}", insecure=True,
        headers=(("x-spyglass-key", tenant.public_key),))))
    backend = TracerProvider(resource=Resource.create({"service.name": "core"}))
    backend.add_span_processor(SimpleSpanProcessor(HttpSpans(
        endpoint=server.url + "/v1/traces", headers={"x-spyglass-key": tenant.public_key})))
    with provider.get_tracer("e").start_as_current_span("GET /", kind=SpanKind.SERVER) as root:
        with backend.get_tracer("c").start_as_current_span("work"):
            pass
    provider.force_flush()
    backend.force_flush()

    trace_id = format(root.get_span_context().trace_id, "032x")
    resp = httpx.get(f"{server.url}/api/v1/projects/{tenant.project_id}/traces/{trace_id}",
                     headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["services"] == ["core", "edge"]
    assert [s["name"] for s in resp.json()["spans"]] == ["GET /", "work"]
