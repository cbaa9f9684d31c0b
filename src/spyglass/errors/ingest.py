"""Sentry ingest endpoints: ``/api/{project_id}/envelope/`` and the legacy ``/store/``.

Authenticate, decode within limits, parse, apply the project's quotas, turn items into rows
(in an ingest worker process, or in a thread of this one), write them through the batching
writer, and answer once they are durable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from spyglass.errors.auth import IngestAuthError, public_key_of
from spyglass.errors.envelope import Envelope, EnvelopeError, Item, parse_envelope
from spyglass.errors.offload import Task, WorkerLost, WorkerTimeout
from spyglass.errors.processing import Processed
from spyglass.errors.schema import OUTCOMES
from spyglass.errors.service import ErrorService, Limited
from spyglass.kernel import selfmetrics
from spyglass.kernel.ingest.decode import BodyError, decode, read_raw
from spyglass.kernel.ingest.routing import IngestRoute, mount_first
from spyglass.kernel.ingest.writer import MalformedRows, Overloaded, WriteFailed, WriterStopped
from spyglass.kernel.runtime import Runtime

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


def reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    h = dict(CORS)
    if status >= 400:
        h["X-Sentry-Error"] = str(body.get("detail", ""))[:200]
    h.update(headers or {})
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=h)


async def preflight(request: Request) -> Response:
    return Response(status_code=200, headers=CORS)


def project_id_of(request: Request) -> int:
    """The ``{project_id}`` of an ingest URL, or a 404 when it is not a project id."""
    value = request.path_params["project_id"]
    if not value.isdigit() or len(value) > 18:
        raise IngestAuthError(404, "project id must be a number")
    return int(value)


def _check_key(runtime: Runtime, project_id: int, key: str) -> int:
    if runtime.keys.project_of(key) != project_id:
        raise IngestAuthError(403, "this key is not an active key of this project")
    return project_id


async def authorize(request: Request, project_id: int, envelope_dsn: str | None) -> int:
    """The project id, once the request's key is known to be an active key of it."""
    key = public_key_of(request, envelope_dsn)
    runtime: Runtime = request.app.state.runtime
    hit, known = runtime.keys.cached(key)
    if hit:
        if known != project_id:
            raise IngestAuthError(403, "this key is not an active key of this project")
        return project_id
    return await run_in_threadpool(_check_key, runtime, project_id, key)


@dataclass
class _Prepared:
    project_id: int
    envelope: Envelope
    processed: Processed
    limited: Limited | None


def _prepare(request: Request, project_id: int, raw: bytes, store: bool) -> _Prepared:
    """Everything CPU-bound of one request, in one worker thread: decode, parse, authenticate
    (on a key cache miss), apply quotas, turn items into rows."""
    body = decode(raw, request.headers.get("content-encoding", ""),
                  MAX_EVENT if store else MAX_ENVELOPE)
    if store:
        event = orjson.loads(body)
        if not isinstance(event, dict):
            raise EnvelopeError("event must be a JSON object")
        envelope = Envelope({}, [Item({"type": "event"}, body)])
        dsn = None
    else:
        envelope = parse_envelope(body)
        dsn = envelope.headers.get("dsn")
    runtime: Runtime = request.app.state.runtime
    _check_key(runtime, project_id, public_key_of(request, dsn if isinstance(dsn, str) else None))
    service: ErrorService = request.app.state.errors
    limited = service.apply_quotas(project_id, envelope)
    processed = service.processor.process(project_id, envelope, _now())
    if limited is not None:
        processed.add(OUTCOMES, limited.outcome_row)
    return _Prepared(project_id, envelope, processed, limited)


async def _offloaded(request: Request, project_id: int, raw: bytes,
                     store: bool) -> _Prepared | Response | None:
    """The request processed by an ingest worker, or None when it must be processed here:
    no workers, a key or project configuration not cached yet (their lookups need the
    database), a key only in the envelope header, quotas (their counters live here), or a
    worker lost meanwhile."""
    service: ErrorService = request.app.state.errors
    workers = service.workers
    if workers is None:
        return _here("no_workers")
    cfg = service.processor.cached_config(project_id)
    if cfg is None or cfg.has_quotas:
        return _here("config_not_cached" if cfg is None else "quotas")
    try:
        key = public_key_of(request)
    except IngestAuthError:
        return _here("key_in_envelope")  # perhaps in the envelope's dsn: the full path looks
    hit, known = request.app.state.runtime.keys.cached(key)
    if not hit:
        return _here("key_not_cached")
    if known != project_id:
        raise IngestAuthError(403, "this key is not an active key of this project")
    received = _now()
    try:
        result = await workers.run(Task(
            project_id, cfg.version, cfg.rules, raw,
            request.headers.get("content-encoding", ""), store,
            MAX_EVENT if store else MAX_ENVELOPE, received))
    except WorkerLost:
        return _here("worker_lost")
    except WorkerTimeout as exc:
        return reply(503, {"detail": str(exc)}, {"Retry-After": "60"})
    _BY_WORKER.inc()
    if result.status != 200 or result.items is None:
        return reply(result.status, {"detail": result.message})
    headers = result.headers or {}
    processor = service.processor
    if processor.finishes_quickly(project_id, result.items):
        processed = processor.finish(project_id, headers, result.items, received)
    else:
        processed = await run_in_threadpool(
            processor.finish, project_id, headers, result.items, received)
    return _Prepared(project_id, Envelope(headers), processed, None)


_BY_WORKER = selfmetrics.INGEST_PROCESSED_BY.labels("worker")


def _here(reason: str) -> None:
    """Count a request the server processes itself (``_offloaded`` then returns None)."""
    selfmetrics.INGEST_PROCESSED_BY.labels(f"server:{reason}").inc()


async def _endpoint(request: Request, store: bool) -> Response:
    try:
        project_id = project_id_of(request)
        raw = await read_raw(request, MAX_COMPRESSED)
        done = await _offloaded(request, project_id, raw, store)
        if isinstance(done, Response):
            return done
        prepared = done or await run_in_threadpool(_prepare, request, project_id, raw, store)
    except (BodyError, IngestAuthError) as exc:
        return reply(exc.status, {"detail": exc.message})
    except orjson.JSONDecodeError as exc:
        return reply(400, {"detail": f"event is not valid JSON: {exc}"})
    except EnvelopeError as exc:
        return reply(400, {"detail": str(exc)})
    return await _commit(request, prepared)


async def envelope_endpoint(request: Request) -> Response:
    return await _endpoint(request, store=False)


async def store_endpoint(request: Request) -> Response:
    return await _endpoint(request, store=True)


async def ingest_envelope(request: Request, project_id: int, envelope: Envelope) -> Response:
    """Process and store an envelope built by another endpoint (e.g. CSP reports)."""
    service: ErrorService = request.app.state.errors

    def prepare() -> _Prepared:
        limited = service.apply_quotas(project_id, envelope)
        processed = service.processor.process(project_id, envelope, _now())
        if limited is not None:
            processed.add(OUTCOMES, limited.outcome_row)
        return _Prepared(project_id, envelope, processed, limited)

    return await _commit(request, await run_in_threadpool(prepare))


async def _commit(request: Request, prepared: _Prepared) -> Response:
    """Write the rows and answer once they are durable."""
    service: ErrorService = request.app.state.errors
    processed, limited = prepared.processed, prepared.limited
    writer = request.app.state.runtime.writer
    try:
        writes = [writer.write(processed.specs[name], rows)
                  for name, rows in processed.rows.items()]
        if len(writes) == 1:
            await writes[0]
        else:
            await asyncio.gather(*writes)
    except Overloaded as exc:
        service.processor.forget_events(prepared.project_id, processed)
        return reply(429, {"detail": str(exc)}, {"Retry-After": str(exc.retry_after)})
    except (WriteFailed, WriterStopped) as exc:
        service.processor.forget_events(prepared.project_id, processed)
        return reply(503, {"detail": str(exc)}, {"Retry-After": "5"})
    except MalformedRows as exc:
        service.processor.forget_events(prepared.project_id, processed)
        return reply(400, {"detail": str(exc)})
    header_id = prepared.envelope.headers.get("event_id")
    event_id = processed.event_id or (header_id if isinstance(header_id, str) else None)
    body: dict[str, Any] = {"id": event_id} if event_id else {}
    if limited is None:
        return reply(200, body)
    headers = {"X-Sentry-Rate-Limits": limited.header, "Retry-After": str(limited.retry_after)}
    return reply(429 if limited.everything else 200, {**body, "detail": limited.message}, headers)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


ROUTES = [
    IngestRoute("/api/{project_id}/envelope/", envelope_endpoint, methods=["POST"]),
    IngestRoute("/api/{project_id}/store/", store_endpoint, methods=["POST"]),
    IngestRoute("/api/{project_id}/envelope/", preflight, methods=["OPTIONS"]),
    IngestRoute("/api/{project_id}/store/", preflight, methods=["OPTIONS"]),
]


def install(app: FastAPI) -> None:
    app.state.errors = ErrorService(app.state.runtime)
    mount_first(app, ROUTES)
