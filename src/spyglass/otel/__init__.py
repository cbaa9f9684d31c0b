"""OpenTelemetry: OTLP ingest of traces, metrics and logs (HTTP on the main port, gRPC on its
own), into the ``spans``, ``logs`` and ``metric_points`` tables. See docs/opentelemetry.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

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
    _run_grpc_with_app(app)


def _run_grpc_with_app(app: FastAPI) -> None:
    """Serve OTLP/gRPC while the app runs, by wrapping the app's lifespan.

    The kernel has no start/stop hooks for features; wrapping ``router.lifespan_context``
    starts the gRPC server after the runtime has started and stops it before the runtime
    stops (so no call is left waiting on a stopped writer).
    """
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            handle = await run_in_threadpool(_start_grpc, app)
            try:
                yield state
            finally:
                if handle is not None:
                    await run_in_threadpool(handle.stop)

    app.router.lifespan_context = lifespan


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
