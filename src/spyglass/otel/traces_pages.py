"""The trace pages: search (``/o/{org}/p/{project}/traces``) and one trace's waterfall
(``/o/{org}/p/{project}/traces/{trace_id}``) with its logs and errors.

JSON: ``GET /api/v1/projects/{project_id}/traces`` searches with the same filters.
Reading needs the viewer role. The figures come from :mod:`spyglass.otel.traces_queries`;
the service map lives in :mod:`spyglass.otel.servicemap`.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from spyglass import __version__
from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.deps import (
    Caller,
    api_caller,
    db_session,
    org_access,
    page_caller,
    project_access,
)
from spyglass.kernel.meta.models import Organization, Project, Role
from spyglass.kernel.telemetry import TelemetryStore
from spyglass.kernel.web import templating
from spyglass.otel import traces_queries as tq
from spyglass.otel.api import TRACE_ID, SpanOut
from spyglass.otel.api import trace_spans

templating.add_template_dir(Path(__file__).parent / "templates")
templating.register_area("traces", "/o/{org}/p/{project}/traces")

STATIC = Path(__file__).parent / "static"
ASSETS = "/assets/traces"

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["traces"])

SORTS = {"recent": "Most recent", "longest": "Longest first", "shortest": "Shortest first",
         "spans": "Most spans"}

# -- formatting ---------------------------------------------------------------------------------

#: Service colours: distinct, readable on white, stable for a name (a hash picks one).
PALETTE = ["#6d5dfc", "#16a394", "#e8833a", "#3b82f6", "#d9468f", "#8a9a1b", "#0ea5c6",
           "#b45fd6", "#d97706", "#4f7d5b", "#e05d5d", "#5b6ee1", "#a0522d", "#2f9e44"]


def service_color(name: str) -> str:
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


def palette(names: Iterable[str]) -> Callable[[str], str]:
    """Colours for a set of services, distinct while the palette lasts: each name takes its
    hashed colour, or the next free one (in name order, so every page of a project that
    passes the same set agrees)."""
    taken: dict[str, str] = {}
    used: set[int] = set()
    for name in sorted(set(names)):
        i = zlib.crc32(name.encode()) % len(PALETTE)
        if len(used) < len(PALETTE):
            while i in used:
                i = (i + 1) % len(PALETTE)
        used.add(i)
        taken[name] = PALETTE[i]
    return lambda name: taken.get(name) or service_color(name)


def project_palette(store: TelemetryStore, project_id: int, extra: Iterable[str] = ()
                    ) -> Callable[[str], str]:
    """The project's colours: over the services seen in the last week, plus ``extra``."""
    since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=7)
    return palette([*tq.services_seen(store, project_id, since), *extra])


def duration_ms(ms: float | None) -> str:
    """0.0123 → '12 µs', 3.456 → '3.46 ms', 245 → '245 ms', 1534 → '1.53 s', 95000 → '1.58 min'."""
    if ms is None:
        return "—"
    if ms <= 0:
        return "0 ms"
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.2f} min"


def duration_us(us: float) -> str:
    return duration_ms(us / 1000)


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|min)?\s*$", re.IGNORECASE)
UNIT_MS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "min": 60_000.0}


def parse_duration(text: str) -> float | None:
    """'250', '250ms', '1.5s', '300us', '2m' → milliseconds; None when empty or unreadable."""
    match = DURATION.match(text or "")
    if match is None:
        return None
    return float(match.group(1)) * UNIT_MS[(match.group(2) or "ms").lower()]


templating.env.globals.update(service_color=service_color)
templating.env.filters.update(span_duration=duration_ms, span_duration_us=duration_us)

# -- helpers ------------------------------------------------------------------------------------


def project_for(db: Session, caller: Caller, org_slug: str, project_slug: str
                ) -> tuple[Organization, Project, Role]:
    org, role = org_access(db, caller, org_slug, Role.viewer)
    project = db.scalar(select(Project).where(Project.org_id == org.id,
                                              Project.slug == project_slug))
    if project is None:
        raise HTTPException(404, "no such project")
    return org, project, role


def store_of(request: Request) -> TelemetryStore:
    return request.app.state.runtime.store  # type: ignore[no-any-return]


def url_with(path: str, **params: Any) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return path + (f"?{urlencode(clean)}" if clean else "")


def base_path(org: Organization, project: Project) -> str:
    return f"/o/{quote(org.slug)}/p/{quote(project.slug)}"


def setup_info(request: Request, db: Session, project: Project) -> dict[str, Any]:
    """What the empty state needs: the OTLP endpoint and the project's ingest key."""
    key = accounts.active_key(db, project)
    return {"public_url": request.app.state.runtime.settings.public_url.rstrip("/"),
            "public_key": key.public_key if key is not None else None}


def has_spans(store: TelemetryStore, project_id: int) -> bool:
    return bool(store.rows("SELECT 1 AS x FROM spans WHERE project_id = {p:UInt64} LIMIT 1",
                           {"p": project_id}))


def _sorted(hits: list[tq.TraceHit], sort: str) -> list[tq.TraceHit]:
    if sort == "longest":
        return sorted(hits, key=lambda h: -h.duration_ms)
    if sort == "shortest":
        return sorted(hits, key=lambda h: h.duration_ms)
    if sort == "spans":
        return sorted(hits, key=lambda h: -h.spans)
    return hits


def _scatter(hits: list[tq.TraceHit], base: str) -> dict[str, list[Any]]:
    """Points of the duration chart, by time: x (epoch s), ok and error durations (ms), urls."""
    points = sorted(hits, key=lambda h: h.start)
    epoch = dt.datetime(1970, 1, 1)
    return {
        "x": [(h.start - epoch).total_seconds() for h in points],
        "ok": [None if h.errors else round(h.duration_ms, 3) for h in points],
        "error": [round(h.duration_ms, 3) if h.errors else None for h in points],
        "label": [f"{h.root_service}: {h.root_name}" for h in points],
        "url": [f"{base}/traces/{h.trace_id}" for h in points],
    }


# -- search -------------------------------------------------------------------------------------


@router.get("/o/{org_slug}/p/{project_slug}/traces")
def traces_page(
    request: Request,
    org_slug: str,
    project_slug: str,
    service: str = Query("", max_length=300),
    operation: str = Query("", max_length=500),
    tags: str = Query("", max_length=2000, description="key=value attribute filters"),
    min_duration: str = Query("", alias="min", max_length=30),
    max_duration: str = Query("", alias="max", max_length=30),
    status: str = "",
    period: str = tq.DEFAULT_PERIOD,
    limit: int = tq.DEFAULT_LIMIT,
    sort: str = "recent",
    trace: str = Query("", max_length=100, description="jump to this trace id"),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = project_for(db, caller, org_slug, project_slug)
    base = base_path(org, project)
    if trace.strip() and TRACE_ID.match(trace.strip()):
        return RedirectResponse(f"{base}/traces/{trace.strip().lower()}", status_code=303)
    period = period if period in tq.PERIODS else tq.DEFAULT_PERIOD
    limit = limit if limit in tq.LIMITS else tq.DEFAULT_LIMIT
    sort = sort if sort in SORTS else "recent"
    status = status if status in ("ok", "error") else ""
    attributes, bad_tags = tq.parse_attributes(tags)
    min_ms, max_ms = parse_duration(min_duration), parse_duration(max_duration)
    until = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    search = tq.Search(project.id, until - dt.timedelta(seconds=tq.PERIODS[period]), until,
                       service=service, operation=operation, min_ms=min_ms, max_ms=max_ms,
                       status=status, attributes=attributes, limit=limit)
    store = store_of(request)
    hits = _sorted(tq.search_traces(store, search), sort)
    first_run = not hits and not has_spans(store, project.id)
    services, operations = tq.facets(store, project.id, search.since - dt.timedelta(days=7),
                                     service)
    state = {"service": service, "operation": operation, "tags": tags, "min": min_duration,
             "max": max_duration, "status": status, "period": period, "limit": limit,
             "sort": sort}

    def url(**changes: Any) -> str:
        merged = {**state, **changes}
        for key, default in (("period", tq.DEFAULT_PERIOD), ("limit", tq.DEFAULT_LIMIT),
                             ("sort", "recent")):
            if merged.get(key) == default:
                merged[key] = None
        return url_with(f"{base}/traces", **merged)

    return templating.render(request, "traces/search.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": ASSETS, "asset_version": __version__, "tab": "search",
        "service_color": project_palette(store, project.id, services), "hits": hits, "longest": max((h.duration_ms for h in hits), default=0.0),
        "scatter": _scatter(hits, base) if hits else None,
        "services": services, "operations": operations, "state": state, "url": url,
        "periods": list(tq.PERIODS), "limits": tq.LIMITS, "sorts": SORTS,
        "bad_tags": bad_tags, "bad_trace": trace.strip() and not TRACE_ID.match(trace.strip()),
        "bad_min": bool(min_duration.strip()) and min_ms is None,
        "bad_max": bool(max_duration.strip()) and max_ms is None,
        "first_run": first_run, "setup": setup_info(request, db, project) if first_run else None,
    }, db=db)


# -- one trace ----------------------------------------------------------------------------------


def _row(node: tq.Node, tree: tq.Tree, color: Callable[[str], str]) -> dict[str, Any]:
    total = max(tree.duration_us, 1)
    left = (node.start_us - tree.start_us) / total * 100
    width = node.duration_us / total * 100
    span = node.span
    critical = []
    for lo, hi in node.critical:
        critical.append(((lo - node.start_us) / max(node.duration_us, 1) * 100,
                         (hi - lo) / max(node.duration_us, 1) * 100))
    exceptions = [e for e in span.events if e.get("name") == "exception"]
    return {
        "node": node, "span": span, "left": left, "width": width, "critical": critical,
        "offset_us": node.start_us - tree.start_us, "color": color(span.service),
        "error": span.status == "error", "exceptions": exceptions,
        "label_right": left + width < 78,
    }


def _detail(span: SpanOut) -> dict[str, Any]:
    """The span's attributes split for reading: well-known groups first, then the rest."""
    attributes = dict(sorted(span.attributes.items()))
    return {"attributes": attributes, "resource": dict(sorted(span.resource.items()))}


def _issues_of(db: Session, project: Project, events: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    from spyglass.errors.models import Issue
    from spyglass.errors.queries import format_short_id

    ids = {e["issue_id"] for e in events if e["issue_id"]}
    issues = {i.id: i for i in db.scalars(select(Issue).where(
        Issue.project_id == project.id, Issue.id.in_(ids)))} if ids else {}
    out = []
    for e in events:
        issue = issues.get(e["issue_id"])
        short = format_short_id(project.slug, issue.short_id) if issue else ""
        out.append({**e, "issue": issue, "short_id": short})
    return out


def _ticks(total_us: int, n: int = 5) -> list[tuple[float, str]]:
    return [(i / n * 100, duration_us(total_us * i / n)) for i in range(n + 1)]


@router.get("/o/{org_slug}/p/{project_slug}/traces/{trace_id}")
def trace_page(
    request: Request,
    org_slug: str,
    project_slug: str,
    trace_id: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = project_for(db, caller, org_slug, project_slug)
    base = base_path(org, project)
    if not TRACE_ID.match(trace_id):
        raise HTTPException(404, "A trace id is 32 hexadecimal digits.")
    trace_id = trace_id.lower()
    store = store_of(request)
    spans = trace_spans(store, project.id, trace_id)
    if not spans:
        raise HTTPException(404, f"No span of trace {trace_id} is stored in this project "
                                 "(it may not have arrived yet, or it is past the retention "
                                 "period).")
    tree = tq.build_tree(spans)
    start = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=tree.start_us)
    end = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=tree.end_us)
    logs = tq.trace_logs(store, project.id, trace_id, start, end)
    errors = _issues_of(db, project, tq.trace_error_events(store, project.id, trace_id,
                                                           start, end))
    services: dict[str, list[int]] = {}
    for n in tree.rows:
        counts = services.setdefault(n.span.service, [0, 0])
        counts[0] += 1
        counts[1] += n.span.status == "error"
    root = tree.roots[0]
    span_ids = {n.span_id for n in tree.rows}
    color = project_palette(store, project.id, services)
    return templating.render(request, "traces/trace.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": ASSETS, "asset_version": __version__, "tab": "search",
        "trace_id": trace_id, "tree": tree, "root": root, "start": start,
        "service_color": color, "rows": [_row(n, tree, color) for n in tree.rows], "detail": _detail,
        "services": sorted(services.items(), key=lambda kv: (-kv[1][0], kv[0])),
        "errors_count": sum(1 for n in tree.rows if n.span.status == "error"),
        "depth": max((n.depth for n in tree.rows), default=0) + 1,
        "orphans": sum(1 for n in tree.roots if n.orphan),
        "skewed": sum(1 for n in tree.rows if n.skew_us),
        "critical_count": len(tree.critical_ids),
        "ticks": _ticks(tree.duration_us), "logs": logs, "span_ids": span_ids,
        "error_events": errors, "severity": tq.severity_name,
        "search_url": f"{base}/traces",
    }, db=db)


# -- JSON API -----------------------------------------------------------------------------------


class TraceHitOut(BaseModel):
    trace_id: str
    start: dt.datetime
    duration_ms: float
    span_count: int
    error_count: int
    root_service: str
    root_name: str
    services: dict[str, int]


class TraceSearchOut(BaseModel):
    since: dt.datetime
    until: dt.datetime
    traces: list[TraceHitOut]


@api.get("/projects/{project_id}/traces", response_model=TraceSearchOut)
async def search_api(
    project_id: int,
    request: Request,
    service: str = Query("", description="a span of this service"),
    operation: str = Query("", description="a span with this name"),
    tags: str = Query("", description="attribute filters, `key=value` separated by spaces "
                                      "(span attributes, typed columns, resource attributes)"),
    min_ms: float | None = Query(None, ge=0, description="the matching span lasted at least"),
    max_ms: float | None = Query(None, ge=0, description="the matching span lasted at most"),
    status: str = Query("", pattern="^(|ok|error)$"),
    minutes: int = Query(60, ge=1, le=60 * 24 * 31),
    limit: int = Query(tq.DEFAULT_LIMIT, ge=1, le=1000),
    caller: Caller = Depends(api_caller),
    db: Session = Depends(db_session),
) -> TraceSearchOut:
    """Traces with a span matching every filter in the last `minutes`, newest first."""
    project_access(db, caller, project_id, Role.viewer)
    attributes, bad = tq.parse_attributes(tags)
    if bad:
        raise HTTPException(422, f"not key=value: {' '.join(bad)}")
    until = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    search = tq.Search(project_id, until - dt.timedelta(minutes=minutes), until,
                       service=service, operation=operation, min_ms=min_ms, max_ms=max_ms,
                       status=status, attributes=attributes, limit=limit)
    hits = await run_in_threadpool(tq.search_traces, store_of(request), search)
    return TraceSearchOut(since=search.since, until=until, traces=[TraceHitOut(
        trace_id=h.trace_id, start=h.start, duration_ms=round(h.duration_ms, 3),
        span_count=h.spans, error_count=h.errors, root_service=h.root_service,
        root_name=h.root_name, services={s: n for s, n, _ in h.services}) for h in hits])


def install(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="traces-assets")
    app.include_router(api)
    app.include_router(router)
