"""Framework-like frames above the shop's handlers (not in-app), as a WSGI stack would add."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def serve(depth: int, handle: Callable[..., Any], route: str, request: dict[str, Any]) -> Any:
    environ = {"PATH_INFO": "/" + route.replace(".", "/"), "REQUEST_METHOD": "POST"}
    return _worker_loop(depth, environ, lambda: handle(route, **request))


def _worker_loop(depth: int, environ: dict[str, Any], call: Callable[[], Any]) -> Any:
    return _wsgi_app(depth, environ, call)


def _wsgi_app(depth: int, environ: dict[str, Any], call: Callable[[], Any]) -> Any:
    return _middleware(depth, environ, call)


def _middleware(depth: int, environ: dict[str, Any], call: Callable[[], Any]) -> Any:
    # One frame per middleware layer (sessions, CSRF, auth, locale ...).
    if depth <= 0:
        return _dispatch(environ, call)
    return _middleware(depth - 1, environ, call)


def _dispatch(environ: dict[str, Any], call: Callable[[], Any]) -> Any:
    return _view(environ["PATH_INFO"], call)


def _view(path: str, call: Callable[[], Any]) -> Any:
    return call()
