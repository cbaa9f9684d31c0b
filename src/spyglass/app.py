"""The ASGI application: the kernel's routes plus every feature's routes."""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import AsyncIterator
from types import ModuleType

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spyglass import __version__
from spyglass.config import Settings
from spyglass.kernel import selfmetrics
from spyglass.kernel.auth.deps import LoginRequired
from spyglass.kernel.ingest.routing import FastLane
from spyglass.kernel.ingest.writer import Overloaded, WriteFailed, WriterStopped
from spyglass.kernel.runtime import Runtime

log = structlog.get_logger("spyglass.http")

#: Feature modules that define routers and telemetry tables; imported when the app is built.
FEATURES = ["spyglass.kernel.api", "spyglass.kernel.web.pages", "spyglass.errors.ingest",
            "spyglass.errors.releases",
            "spyglass.errors.sentry_api",
            "spyglass.errors.security",
            "spyglass.errors.pages",
            "spyglass.errors.performance",
            "spyglass.otel", "spyglass.otel.sampling",
            "spyglass.otel.traces_pages", "spyglass.otel.servicemap",
            "spyglass.otel.logs_pages", "spyglass.otel.metrics_pages",
            "spyglass.otel.dashboards", "spyglass.otel.rollups"]


#: Routes whose successful requests are not logged one by one (their volume is in /metrics).
QUIET_ROUTES = {"/metrics", "/healthz", "/readyz", "/api/{project_id}/envelope/",
                "/api/{project_id}/store/", "/v1/traces", "/v1/metrics", "/v1/logs"}


#: HTTP methods with their own metric label (any other is "other": clients choose methods).
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestLog:
    """One latency observation per request, and a structured log line for the interesting ones.

    A plain ASGI middleware: ``BaseHTTPMiddleware`` costs a task and a stream per request,
    measured at a third of the server's CPU for a small ingest request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope["method"]
            selfmetrics.child(selfmetrics.REQUEST_SECONDS,
                              method if method in METHODS else "other", path,
                              f"{status // 100}xx").observe(elapsed)
            if path not in QUIET_ROUTES or status >= 400:
                log.info("request", method=method, route=path, status=status,
                         ms=round(elapsed * 1000, 2))


class SpyglassApp(FastAPI):
    """FastAPI with the ingest fast lane in front of its middleware stack."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self._entry(scope, receive, send)

    def build_entry(self) -> None:
        self._entry: ASGIApp = RequestLog(self.state.fast_lane)

    async def _full(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def load_features() -> list[ModuleType]:
    """Import every feature, which registers its telemetry tables and metadata models."""
    return [importlib.import_module(name) for name in FEATURES]


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    modules = load_features()
    rt = runtime or Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt.start()
        log.info("started", url=settings.public_url, version=__version__)
        try:
            yield
        finally:
            rt.stop()

    app = SpyglassApp(
        title="Spyglass",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.runtime = rt
    # RequestLog → fast lane (ingest routes) → FastAPI's own stack (everything else).
    app.state.fast_lane = FastLane(app._full)
    app.build_entry()
    from spyglass.kernel.health import router as health_router

    app.include_router(health_router)
    for module in modules:
        module.install(app)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": "/login"})
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={nxt}", status_code=303)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=503,
                            headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(WriterStopped)
    @app.exception_handler(WriteFailed)
    async def _unavailable(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request) and exc.status_code in (403, 404):
            from spyglass.kernel.web.templating import render_error

            return render_error(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    return app


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path.startswith("/v1/"):
        return False
    return "text/html" in request.headers.get("accept", "")
