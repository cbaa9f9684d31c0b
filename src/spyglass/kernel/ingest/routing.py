"""Routes for ingest endpoints: plain Starlette, first in the routing table.

Ingest is the hot path and needs none of FastAPI's parameter machinery, which costs more CPU
than decoding a small event. These routes record themselves in the scope as FastAPI's do, so
request metrics and logs name them by their path template.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.routing import Match, Route
from starlette.types import Scope


class IngestRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Any]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


def mount_first(app: FastAPI, routes: list[IngestRoute]) -> None:
    """Put ``routes`` ahead of every other route (they are matched first)."""
    app.router.routes[0:0] = routes
