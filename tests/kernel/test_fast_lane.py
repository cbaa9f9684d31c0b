"""The ingest fast lane: ingest routes are served ahead of FastAPI's middleware stack, the
rest of the application is not affected, and a failing ingest handler still answers."""

from __future__ import annotations

from fastapi.testclient import TestClient
from starlette.responses import JSONResponse

from spyglass.app import create_app
from spyglass.kernel.ingest.routing import IngestRoute, mount_first
from spyglass.kernel.selfmetrics import REGISTRY


async def _boom(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("handler bug")


async def _hello(request):  # type: ignore[no-untyped-def]
    return JSONResponse({"project": request.path_params["project_id"],
                         "app": request.app is not None})


def test_fast_lane_serves_ingest_routes_and_leaves_the_rest(settings):
    app = create_app(settings)
    mount_first(app, [IngestRoute("/t/{project_id}/hello/", _hello, methods=["POST"]),
                      IngestRoute("/t/{project_id}/boom/", _boom, methods=["POST"])])
    assert app.state.fast_lane.routes[0].path == "/t/{project_id}/hello/"
    with TestClient(app, base_url=settings.public_url) as client:
        r = client.post("/t/42/hello/")
        assert r.status_code == 200 and r.json() == {"project": "42", "app": True}
        # A handler that fails answers 500 in JSON rather than dropping the connection.
        r = client.post("/t/42/boom/")
        assert r.status_code == 500 and r.json() == {"detail": "internal error"}
        # The wrong method on an ingest path goes on to FastAPI, which answers 405.
        assert client.get("/t/42/hello/").status_code == 405
        # Everything else is FastAPI's as before.
        assert client.get("/healthz").status_code == 200
    # Requests in the fast lane are measured under their route template like the others.
    assert REGISTRY.get_sample_value("spyglass_http_request_seconds_count", {
        "method": "POST", "route": "/t/{project_id}/hello/", "status": "2xx"}) >= 1
