"""OTLP/HTTP: ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` on the main port.

Per the OTLP specification: binary protobuf or JSON in, the matching
``Export*ServiceResponse`` out in the same content type; errors carry a ``google.rpc.Status``
body. 400 for a malformed body, 401 for a missing or wrong key, 413 past 64 MiB (before or
after decompression), 415 for another content type, 429/503 with ``Retry-After`` when the
writer cannot take more (OTLP exporters retry those).
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from spyglass.kernel.auth.keycache import KeyCache
from spyglass.kernel.ingest.decode import BodyError, read_body
from spyglass.kernel.ingest.routing import IngestRoute
from spyglass.kernel.ingest.writer import Overloaded, WriteFailed, WriterStopped
from spyglass.kernel.telemetry import TableSpec
from spyglass.otel import ingest
from spyglass.otel.auth import AuthError, key_from_headers, project_for
from spyglass.otel.decode import (
    JSON,
    PROTOBUF,
    SIGNALS,
    DecodeError,
    Signal,
    media_type,
    parse,
    render,
    status_body,
)
from spyglass.otel.rows import Converted

#: Bodies up to this size are decoded on the event loop (a 512-span batch is ~150 KB and takes
#: a few ms); larger ones in a worker thread, so one 64 MiB request cannot stall the server.
INLINE_BYTES = 512 * 1024

# google.rpc.Code values for the Status body of error replies.
_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 429: 8, 503: 14}


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None,
           ) -> Response:
    return Response(status_body(_CODES.get(status, 2), message, kind), status_code=status,
                    media_type=kind, headers=headers)


async def _project(request: Request) -> int:
    key = key_from_headers(request.headers.get)
    keys: KeyCache = request.app.state.runtime.keys
    hit, project_id = keys.cached(key)
    if hit:
        if project_id is None:
            raise AuthError("this key is not an active ingest key")
        return project_id
    return await run_in_threadpool(project_for, keys, key)


def _decode(signal: Signal, body: bytes, kind: str, project_id: int,
            ) -> tuple[TableSpec, Converted]:
    return ingest.convert(signal, parse(signal, body, kind), project_id)


async def export(request: Request, name: str) -> Response:
    signal = SIGNALS[name]
    kind = media_type(request.headers.get("content-type", ""))
    reply_kind = kind or JSON
    try:
        project_id = await _project(request)
    except AuthError as exc:
        return _error(401, str(exc), reply_kind, {"WWW-Authenticate": "Bearer"})
    if kind is None:
        return _error(415, f"content type must be {PROTOBUF} or {JSON}", JSON)
    try:
        body = await read_body(request, ingest.MAX_BODY, ingest.MAX_BODY)
        if len(body) <= INLINE_BYTES:
            spec, converted = _decode(signal, body, kind, project_id)
        else:
            spec, converted = await run_in_threadpool(_decode, signal, body, kind, project_id)
    except BodyError as exc:
        return _error(exc.status, exc.message, kind)
    except DecodeError as exc:
        return _error(400, str(exc), kind)
    try:
        waits = ingest.submit(request.app.state.runtime.writer, request.app.state.otel_resources,
                              project_id, spec, converted)
        for future in waits:
            await asyncio.wrap_future(future)
    except Overloaded as exc:
        return _error(429, str(exc), kind, {"Retry-After": str(exc.retry_after)})
    except (WriteFailed, WriterStopped) as exc:
        return _error(503, str(exc), kind, {"Retry-After": "5"})
    ingest.count(signal, "http", converted)
    return Response(render(ingest.reply(signal, converted), kind), media_type=kind)


async def traces(request: Request) -> Response:
    return await export(request, "traces")


async def metrics(request: Request) -> Response:
    return await export(request, "metrics")


async def logs(request: Request) -> Response:
    return await export(request, "logs")


#: Plain Starlette routes, matched before FastAPI's (see ``kernel.ingest.routing``).
ROUTES = [
    IngestRoute("/v1/traces", traces, methods=["POST"]),
    IngestRoute("/v1/metrics", metrics, methods=["POST"]),
    IngestRoute("/v1/logs", logs, methods=["POST"]),
]
