"""JSON API over stored traces: one trace's spans, and the services with their RED figures.

``GET /api/v1/projects/{project_id}/traces/{trace_id}`` returns every span of the trace with
its attributes (the typed hot attributes folded back in under their current semantic-
convention names), resource, events and links.

``GET /api/v1/projects/{project_id}/services`` returns, per service over a time window, the
RED figures of its entry spans (server and consumer spans, and roots): request rate, errors
and error rate (status ERROR), and duration percentiles.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from spyglass.kernel.auth.deps import Caller, api_caller, db_session, project_access
from spyglass.kernel.meta.models import Role
from spyglass.kernel.telemetry import TelemetryStore

router = APIRouter(prefix="/api/v1", tags=["traces"])

TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
MAX_SPANS = 10_000
KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"]
STATUSES = ["unset", "ok", "error"]

_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, trace_state, service, name, kind, start, duration_ns, "
    "status_code, status_message, http_method, http_route, http_status_code, db_system, "
    "peer_service, scope_name, scope_version, attributes, resource_id, events, links, source"
)


class SpanOut(BaseModel):
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    name: str
    kind: str
    start: dt.datetime
    end: dt.datetime
    duration_ns: int
    status: str
    status_message: str
    scope: dict[str, str]
    attributes: dict[str, str]
    resource: dict[str, str]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    source: str


class TraceOut(BaseModel):
    trace_id: str
    start: dt.datetime
    duration_ns: int
    services: list[str]
    span_count: int
    error_count: int
    spans: list[SpanOut]


class ServiceOut(BaseModel):
    service: str
    spans: int
    requests: int
    rate_per_s: float
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class ServicesOut(BaseModel):
    since: dt.datetime
    until: dt.datetime
    services: list[ServiceOut]


def _check(db: Session, caller: Caller, project_id: int) -> None:
    project_access(db, caller, project_id, Role.viewer)


@router.get("/projects/{project_id}/traces/{trace_id}", response_model=TraceOut)
async def get_trace(project_id: int, trace_id: str, request: Request,
                    caller: Caller = Depends(api_caller),
                    db: Session = Depends(db_session)) -> TraceOut:
    """All spans of one trace, ordered by start."""
    _check(db, caller, project_id)
    if not TRACE_ID.match(trace_id):
        raise HTTPException(404, "a trace id is 32 hexadecimal digits")
    store: TelemetryStore = request.app.state.runtime.store
    spans = await run_in_threadpool(trace_spans, store, project_id, trace_id.lower())
    if not spans:
        raise HTTPException(404, "no spans of this trace")
    first = min(s.start for s in spans)
    last = max(s.end for s in spans)
    return TraceOut(
        trace_id=trace_id.lower(),
        start=first,
        duration_ns=int((last - first).total_seconds() * 1e9),
        services=sorted({s.service for s in spans}),
        span_count=len(spans),
        error_count=sum(1 for s in spans if s.status == "error"),
        spans=spans,
    )


def trace_spans(store: TelemetryStore, project_id: int, trace_id: str) -> list[SpanOut]:
    rows = store.rows(
        f"SELECT {_SPAN_COLUMNS} FROM spans WHERE project_id = {{p:UInt64}} "
        f"AND trace_id = {{t:String}} ORDER BY start LIMIT {MAX_SPANS}",
        {"p": project_id, "t": trace_id},
    )
    resources = resource_attributes(store, project_id, {r["resource_id"] for r in rows})
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["span_id"] in seen:  # an exporter's retry may have stored a span twice
            continue
        seen.add(row["span_id"])
        out.append(_span_out(row, resources.get(row["resource_id"], {})))
    return out


def _span_out(row: dict[str, Any], resource: dict[str, str]) -> SpanOut:
    attributes = dict(row["attributes"])
    for key, column in (("http.request.method", "http_method"), ("http.route", "http_route"),
                        ("db.system.name", "db_system"), ("peer.service", "peer_service")):
        if row[column]:
            attributes[key] = row[column]
    if row["http_status_code"]:
        attributes["http.response.status_code"] = str(row["http_status_code"])
    start: dt.datetime = row["start"]
    return SpanOut(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        service=row["service"],
        name=row["name"],
        kind=KINDS[row["kind"]] if row["kind"] < len(KINDS) else str(row["kind"]),
        start=start,
        end=start + dt.timedelta(microseconds=row["duration_ns"] // 1000),
        duration_ns=row["duration_ns"],
        status=STATUSES[row["status_code"]] if row["status_code"] < 3 else "unset",
        status_message=row["status_message"],
        scope={"name": row["scope_name"], "version": row["scope_version"]},
        attributes=attributes,
        resource=resource,
        events=orjson.loads(row["events"]) if row["events"] else [],
        links=orjson.loads(row["links"]) if row["links"] else [],
        source=row["source"],
    )


def resource_attributes(store: TelemetryStore, project_id: int, ids: set[int],
                        ) -> dict[int, dict[str, str]]:
    """The attributes of the given resources (any one of each resource's copies)."""
    ids = {i for i in ids if i}
    if not ids:
        return {}
    params: dict[str, Any] = {"p": project_id}
    names = []
    for n, rid in enumerate(sorted(ids)):
        params[f"r{n}"] = rid
        names.append(f"{{r{n}:UInt64}}")
    where = f"project_id = {{p:UInt64}} AND resource_id IN ({', '.join(names)})"
    if store.dialect == "clickhouse":
        sql = (f"SELECT resource_id, attributes FROM resources WHERE {where} "
               "ORDER BY timestamp DESC LIMIT 1 BY resource_id")
    else:
        sql = (f"SELECT resource_id, attributes FROM resources WHERE {where} "
               "QUALIFY row_number() OVER (PARTITION BY resource_id ORDER BY timestamp DESC) = 1")
    return {r["resource_id"]: dict(r["attributes"]) for r in store.rows(sql, params)}


@router.get("/projects/{project_id}/services", response_model=ServicesOut)
async def list_services(
    project_id: int,
    request: Request,
    since: dt.datetime | None = Query(None, description="start of the window (default: "
                                                        "`minutes` before `until`)"),
    until: dt.datetime | None = Query(None, description="end of the window (default: now)"),
    minutes: int = Query(60, ge=1, le=60 * 24 * 31),
    caller: Caller = Depends(api_caller),
    db: Session = Depends(db_session),
) -> ServicesOut:
    """Services seen in the window, with the RED figures of their entry spans."""
    _check(db, caller, project_id)
    end = _utc(until) if until else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start = _utc(since) if since else end - dt.timedelta(minutes=minutes)
    if start >= end:
        raise HTTPException(422, "since must be before until")
    store: TelemetryStore = request.app.state.runtime.store
    rows = await run_in_threadpool(service_red, store, project_id, start, end)
    seconds = (end - start).total_seconds()
    services = []
    for row in rows:
        requests, errors = int(row["requests"]), int(row["errors"])
        q = list(row["q"] or []) if requests else []
        services.append(ServiceOut(
            service=row["service"],
            spans=int(row["spans"]),
            requests=requests,
            rate_per_s=round(requests / seconds, 6),
            errors=errors,
            error_rate=round(errors / requests, 6) if requests else 0.0,
            p50_ms=_ms(q, 0), p95_ms=_ms(q, 1), p99_ms=_ms(q, 2),
        ))
    return ServicesOut(since=start, until=end, services=services)


def service_red(store: TelemetryStore, project_id: int, since: dt.datetime,
                until: dt.datetime) -> list[dict[str, Any]]:
    entry = "(kind IN (2, 5) OR parent_span_id = '')"
    if store.dialect == "clickhouse":
        aggregates = (f"countIf({entry}) AS requests, "
                      f"countIf({entry} AND status_code = 2) AS errors, "
                      f"quantilesIf(0.5, 0.95, 0.99)(duration_ns, {entry}) AS q")
    else:
        aggregates = (f"count(*) FILTER (WHERE {entry}) AS requests, "
                      f"count(*) FILTER (WHERE {entry} AND status_code = 2) AS errors, "
                      f"quantile_cont(duration_ns, [0.5, 0.95, 0.99]) FILTER (WHERE {entry}) AS q")
    return store.rows(
        f"SELECT service, count(*) AS spans, {aggregates} FROM spans "
        "WHERE project_id = {p:UInt64} AND start >= {since:DateTime64(6)} "
        "AND start < {until:DateTime64(6)} GROUP BY service ORDER BY service",
        {"p": project_id, "since": since, "until": until},
    )


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _ms(q: list[Any], i: int) -> float | None:
    if len(q) <= i or q[i] is None:
        return None
    return round(float(q[i]) / 1e6, 3)
