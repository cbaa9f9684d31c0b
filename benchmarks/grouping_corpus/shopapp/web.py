"""A tiny request pipeline: every handler runs under the same middleware frames."""

import time

ROUTES = {}


def route(name):
    def register(handler):
        ROUTES[name] = handler
        return handler

    return register


def _timing_middleware(handler, request):
    started = time.perf_counter()
    try:
        return handler(request)
    finally:
        request["elapsed"] = time.perf_counter() - started


def _auth_middleware(handler, request):
    request.setdefault("user", {"id": request.get("user_id", 0)})
    return _timing_middleware(handler, request)


def _anonymous_middleware(handler, request):
    request["user"] = {"id": None}
    return _timing_middleware(handler, request)


def handle(name, **request):
    # Anonymous requests take another middleware path to the same handler: the same crash
    # site then shows two different stacks.
    if request.pop("anonymous", False):
        return _anonymous_middleware(ROUTES[name], request)
    return _auth_middleware(ROUTES[name], request)
