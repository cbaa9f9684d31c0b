"""Sentry ingest endpoints: ``/api/{project_id}/envelope/`` and the legacy ``/store/``.

Authenticate, decode within limits, parse, apply the project's quotas, turn items into rows
(in a worker thread), write them through the batching writer, and answer once they are
durable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from spyglass.errors.auth import IngestAuthError, public_key_of
from spyglass.errors.envelope import Envelope, EnvelopeError, Item, parse_envelope
from spyglass.errors.schema import OUTCOMES
from spyglass.errors.service import ErrorService
from spyglass.kernel.auth.accounts import project_for_key
from spyglass.kernel.ingest.decode import BodyError, read_body
from spyglass.kernel.ingest.writer import Overloaded, WriteFailed, WriterStopped

# Sentry's documented ingest limits.
MAX_COMPRESSED = 20 * 1024 * 1024
MAX_ENVELOPE = 100 * 1024 * 1024
MAX_EVENT = 1024 * 1024

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "x-sentry-auth, content-type, content-encoding, authorization, sentry-trace, baggage"
    ),
    "Access-Control-Expose-Headers": "x-sentry-error, x-sentry-rate-limits, retry-after",
    "Access-Control-Max-Age": "3600",
}

router = APIRouter(include_in_schema=False)


def reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    h = dict(CORS)
    if status >= 400:
        h["X-Sentry-Error"] = str(body.get("detail", ""))[:200]
    h.update(headers or {})
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=h)


@router.options("/api/{project_id}/envelope/")
@router.options("/api/{project_id}/store/")
async def preflight(project_id: str) -> Response:
    return Response(status_code=200, headers=CORS)


async def authorize(request: Request, project_id: str, envelope_dsn: str | None) -> int:
    if not project_id.isdigit():
        raise IngestAuthError(404, "project id must be a number")
    key = public_key_of(request, envelope_dsn)
    db = request.app.state.runtime.db

    def lookup() -> bool:
        with db.session() as s:
            return project_for_key(s, int(project_id), key) is not None

    if not await run_in_threadpool(lookup):
        raise IngestAuthError(403, "this key is not an active key of this project")
    return int(project_id)


@router.post("/api/{project_id}/envelope/")
async def envelope_endpoint(project_id: str, request: Request) -> Response:
    try:
        body = await read_body(request, MAX_COMPRESSED, MAX_ENVELOPE)
        envelope = parse_envelope(body)
        dsn = envelope.headers.get("dsn")
        pid = await authorize(request, project_id, dsn if isinstance(dsn, str) else None)
    except (BodyError, IngestAuthError) as exc:
        return reply(exc.status, {"detail": exc.message})
    except EnvelopeError as exc:
        return reply(400, {"detail": str(exc)})
    return await ingest_envelope(request, pid, envelope)


@router.post("/api/{project_id}/store/")
async def store_endpoint(project_id: str, request: Request) -> Response:
    try:
        body = await read_body(request, MAX_COMPRESSED, MAX_EVENT)
        pid = await authorize(request, project_id, None)
        event = orjson.loads(body)
    except (BodyError, IngestAuthError) as exc:
        return reply(exc.status, {"detail": exc.message})
    except orjson.JSONDecodeError as exc:
        return reply(400, {"detail": f"event is not valid JSON: {exc}"})
    if not isinstance(event, dict):
        return reply(400, {"detail": "event must be a JSON object"})
    item = Item({"type": "event"}, body)
    return await ingest_envelope(request, pid, Envelope({}, [item]))


async def ingest_envelope(request: Request, project_id: int, envelope: Envelope) -> Response:
    service: ErrorService = request.app.state.errors
    limited = service.apply_quotas(project_id, envelope)
    processed = await run_in_threadpool(service.processor.process, project_id, envelope, _now())
    if limited is not None:
        processed.add(OUTCOMES, limited.outcome_row)
    writer = request.app.state.runtime.writer
    try:
        await asyncio.gather(*(writer.write(processed.specs[name], rows)
                               for name, rows in processed.rows.items()))
    except Overloaded as exc:
        service.processor.forget_events(project_id, processed)
        return reply(429, {"detail": str(exc)}, {"Retry-After": str(exc.retry_after)})
    except (WriteFailed, WriterStopped) as exc:
        service.processor.forget_events(project_id, processed)
        return reply(503, {"detail": str(exc)}, {"Retry-After": "5"})
    header_id = envelope.headers.get("event_id")
    event_id = processed.event_id or (header_id if isinstance(header_id, str) else None)
    body: dict[str, Any] = {"id": event_id} if event_id else {}
    if limited is None:
        return reply(200, body)
    headers = {"X-Sentry-Rate-Limits": limited.header, "Retry-After": str(limited.retry_after)}
    return reply(429 if limited.everything else 200, {**body, "detail": limited.message}, headers)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def install(app: FastAPI) -> None:
    app.state.errors = ErrorService(app.state.runtime)
    app.include_router(router)
