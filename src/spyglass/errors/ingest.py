"""Sentry ingest endpoints: ``/api/{project_id}/envelope/`` and the legacy ``/store/``.

This first slice authenticates, decodes, parses envelopes and stores error events durably
through the batching writer. Grouping, issues and the other item types build on it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from spyglass.errors.auth import IngestAuthError, public_key_of
from spyglass.errors.envelope import Envelope, EnvelopeError, parse_envelope
from spyglass.errors.schema import EVENTS
from spyglass.kernel import selfmetrics
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


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
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


async def _authorize(request: Request, project_id: str, envelope_dsn: str | None) -> int:
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
        pid = await _authorize(request, project_id, dsn if isinstance(dsn, str) else None)
    except (BodyError, IngestAuthError) as exc:
        return _reply(exc.status, {"detail": exc.message})
    except EnvelopeError as exc:
        return _reply(400, {"detail": str(exc)})
    rows, event_id = _event_rows(pid, envelope)
    return await _store(request, rows, {"id": event_id} if event_id else {})


@router.post("/api/{project_id}/store/")
async def store_endpoint(project_id: str, request: Request) -> Response:
    try:
        body = await read_body(request, MAX_COMPRESSED, MAX_EVENT)
        pid = await _authorize(request, project_id, None)
        event = orjson.loads(body)
    except (BodyError, IngestAuthError) as exc:
        return _reply(exc.status, {"detail": exc.message})
    except orjson.JSONDecodeError as exc:
        return _reply(400, {"detail": f"event is not valid JSON: {exc}"})
    if not isinstance(event, dict):
        return _reply(400, {"detail": "event must be a JSON object"})
    row = event_row(pid, event, _now())
    selfmetrics.INGEST_ITEMS.labels("store", "event").inc()
    return await _store(request, [row], {"id": row["event_id"]})


async def _store(request: Request, rows: list[dict[str, Any]], ok: dict[str, Any]) -> Response:
    try:
        await request.app.state.runtime.writer.write(EVENTS, rows)
    except Overloaded as exc:
        return _reply(429, {"detail": str(exc)}, {"Retry-After": str(exc.retry_after)})
    except (WriteFailed, WriterStopped) as exc:
        return _reply(503, {"detail": str(exc)}, {"Retry-After": "5"})
    return _reply(200, ok)


def _event_rows(project_id: int, envelope: Envelope) -> tuple[list[dict[str, Any]], str | None]:
    rows = []
    received = _now()
    first_id = envelope.headers.get("event_id")
    for item in envelope.items:
        kind = item.type or "unknown"
        if kind != "event":
            # Other item types are accepted and counted until their feature exists.
            selfmetrics.INGEST_ITEMS.labels("envelope", kind[:32]).inc()
            continue
        if len(item.payload) > MAX_EVENT:
            selfmetrics.INGEST_REJECTED.labels("envelope", "event_too_large").inc()
            continue
        try:
            event = item.json()
        except orjson.JSONDecodeError:
            selfmetrics.INGEST_REJECTED.labels("envelope", "invalid_json").inc()
            continue
        if not isinstance(event, dict):
            selfmetrics.INGEST_REJECTED.labels("envelope", "not_an_object").inc()
            continue
        if "event_id" not in event and isinstance(first_id, str):
            event["event_id"] = first_id
        rows.append(event_row(project_id, event, received))
        selfmetrics.INGEST_ITEMS.labels("envelope", "event").inc()
    event_id = rows[0]["event_id"] if rows else first_id if isinstance(first_id, str) else None
    return rows, event_id


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _str(value: Any, limit: int = 512) -> str:
    if value is None:
        return ""
    return (value if isinstance(value, str) else str(value))[:limit]


def _timestamp(value: Any, fallback: dt.datetime) -> dt.datetime:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
        if isinstance(value, str):
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
            return parsed
    except (ValueError, OverflowError, OSError):
        pass
    return fallback


def _event_id(value: Any) -> str:
    try:
        return uuid.UUID(str(value)).hex
    except ValueError:
        return uuid.uuid4().hex


def _tags(value: Any) -> dict[str, str]:
    pairs = value.items() if isinstance(value, dict) else value if isinstance(value, list) else []
    tags: dict[str, str] = {}
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            tags[_str(pair[0], 200)] = _str(pair[1], 200)
    return tags


def event_row(project_id: int, event: dict[str, Any], received: dt.datetime) -> dict[str, Any]:
    """The stored row of one event: hot fields typed, the whole event kept as JSON."""
    values = (event.get("exception") or {}).get("values") if isinstance(
        event.get("exception"), dict) else event.get("exception")
    exc = values[-1] if isinstance(values, list) and values and isinstance(values[-1], dict) else {}
    message = event.get("logentry") or event.get("message") or ""
    if isinstance(message, dict):
        message = message.get("formatted") or message.get("message") or ""
    exc_type, exc_value = _str(exc.get("type"), 200), _str(exc.get("value"), 2000)
    title = f"{exc_type}: {exc_value}" if exc_type else _str(message, 2000) or "<unlabeled event>"
    user = event.get("user") if isinstance(event.get("user"), dict) else {}
    contexts = event.get("contexts") if isinstance(event.get("contexts"), dict) else {}
    trace = contexts.get("trace") if isinstance(contexts.get("trace"), dict) else {}
    return {
        "project_id": project_id,
        "timestamp": _timestamp(event.get("timestamp"), received),
        "received_at": received,
        "event_id": _event_id(event.get("event_id")),
        "level": _str(event.get("level") or "error", 16),
        "platform": _str(event.get("platform") or "other", 32),
        "release": _str(event.get("release"), 200),
        "environment": _str(event.get("environment"), 64),
        "title": title[:2000],
        "exception_type": exc_type,
        "exception_value": exc_value,
        "transaction": _str(event.get("transaction"), 500),
        "user_id": _str(user.get("id") or user.get("email") or user.get("ip_address"), 200),
        "trace_id": _str(trace.get("trace_id"), 32),
        "tags": _tags(event.get("tags")),
        "data": orjson.dumps(event).decode(),
    }


def install(app: FastAPI) -> None:
    app.include_router(router)
