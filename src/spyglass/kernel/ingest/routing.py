"""Routes for ingest endpoints: plain Starlette, and a fast lane past the middleware stack.

Ingest is the hot path and needs none of FastAPI's parameter machinery, nor its middleware
stack (server errors, exception handlers, exit stacks, body limits), which together cost
more CPU than decoding a small event. Ingest routes are matched first and served by
:class:`FastLane` straight from the ASGI entry point; their handlers answer every error
themselves. They record themselves in the scope as FastAPI's routes do, so request metrics
and logs name them by their path template.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)


class IngestRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Any]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


class FastLane:
    """Serve ingest routes before the application's middleware stack; everything else (an
    ingest path with the wrong method too) goes on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes: list[IngestRoute] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await self._serve(route, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, route: IngestRoute, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            response = await route.endpoint(Request(scope, receive))
            await response(scope, receive, send_tracked)
        except Exception:
            # What ServerErrorMiddleware would do: log it, and answer 500 if nothing was sent.
            log.exception("ingest_handler_failed", route=route.path)
            if started:
                raise
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"detail":"internal error"}'})


def mount_first(app: FastAPI, routes: list[IngestRoute]) -> None:
    """Put ``routes`` ahead of every other route, in the fast lane when the app has one."""
    app.router.routes[0:0] = routes
    lane: FastLane | None = getattr(app.state, "fast_lane", None)
    if lane is not None:
        lane.routes[0:0] = routes
