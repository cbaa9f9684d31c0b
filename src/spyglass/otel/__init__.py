"""OpenTelemetry: OTLP ingest of traces, metrics and logs (HTTP on the main port, gRPC on its
own), into the ``spans``, ``logs`` and ``metric_points`` tables. See docs/opentelemetry.md.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI

from spyglass.otel import schema  # noqa: F401 -- registers the tables
from spyglass.otel.resources import ResourceLog

log = structlog.get_logger(__name__)


def install(app: FastAPI) -> None:
    from spyglass.kernel.ingest.routing import mount_first
    from spyglass.otel.api import router as api_router
    from spyglass.otel.http import ROUTES

    runtime = app.state.runtime
    app.state.otel_resources = ResourceLog(runtime.writer)
    mount_first(app, ROUTES)
    app.include_router(api_router)
    # OTLP/gRPC runs beside the HTTP server: started once storage is ready, stopped before
    # the writer (so no call is left waiting on a stopped writer).
    runtime.add_service(lambda: _start_grpc(app), _stop_grpc)


def _stop_grpc(handle: Any) -> None:
    if handle is not None:
        handle.stop()


def _start_grpc(app: FastAPI) -> Any:
    from spyglass.otel.grpc import start_grpc

    runtime = app.state.runtime
    port = runtime.settings.otlp_grpc_port
    if not port:
        return None
    try:
        return start_grpc(runtime, port, resources=app.state.otel_resources)
    except RuntimeError as exc:
        # Port taken (another server, a parallel test run): HTTP ingest still works.
        log.error("otlp_grpc_unavailable", port=port, error=str(exc))
        return None
