"""The logs explorer: search, filter, the volume histogram, paging, live tail and context.

Page: ``/o/{org}/p/{project}/logs``. Fragments for HTMX: ``.../logs/more`` (the next page,
"load more" and infinite scroll) and ``.../logs/tail`` (polled every 2 s while live tail is
on). ``.../logs/context`` shows the lines around one line of the same service. JSON:
``GET /api/v1/projects/{project_id}/logs``. Reading needs the viewer role. Queries are in
:mod:`spyglass.otel.logs_queries`; the time-range helpers here are shared with the metrics
pages.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup, escape
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from spyglass import __version__
from spyglass.kernel.auth.deps import (
    Caller,
    api_caller,
    db_session,
    page_caller,
    project_access,
)
from spyglass.kernel.auth.deps import project_by_slug as project_of
from spyglass.kernel.meta.models import Organization, Project, Role
from spyglass.kernel.telemetry import TelemetryStore
from spyglass.kernel.web import templating
from spyglass.otel import logs_queries as lq
from spyglass.otel.api import resource_attributes

STATIC = Path(__file__).parent / "static"
ASSETS = "/assets/explore"

templating.add_template_dir(Path(__file__).parent / "templates")
templating.register_area("logs", "/o/{org}/p/{project}/logs")

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["logs"])

# -- time ranges (shared with the metrics pages) -------------------------------------------------

PERIODS: dict[str, int] = {"5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400,
                           "7d": 7 * 86400, "30d": 30 * 86400}
STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
         86400]
MAX_RANGE = 400 * 86400


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def parse_instant(text: str | None) -> dt.datetime | None:
    """ISO 8601 (a zone is converted to UTC; none means UTC) or epoch seconds/milliseconds."""
    if not text:
        return None
    text = text.strip()
    try:
        if re.fullmatch(r"\d{9,13}(\.\d+)?", text):
            value = float(text)
            return dt.datetime(1970, 1, 1) + dt.timedelta(
                seconds=value / 1000 if value > 1e11 else value)
        parsed = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


@dataclass
class TimeRange:
    since: dt.datetime
    until: dt.datetime
    period: str  # "" for a custom range

    @classmethod
    def from_params(cls, period: str = "", since: str = "", until: str = "",
                    default: str = "1h") -> TimeRange:
        start, end = parse_instant(since), parse_instant(until)
        if start is not None:
            end = end or utcnow()
            if start < end and (end - start).total_seconds() <= MAX_RANGE:
                return cls(start, end, "")
        period = period if period in PERIODS else default
        end = utcnow()
        return cls(end - dt.timedelta(seconds=PERIODS[period]), end, period)

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()

    def step(self, points: int = 60) -> int:
        want = self.seconds / points
        return next((s for s in STEPS if s >= want), STEPS[-1])

    def params(self) -> dict[str, str]:
        if self.period:
            return {"period": self.period}
        return {"since": iso(self.since), "until": iso(self.until)}

    def label(self) -> str:
        if self.period:
            return f"Last {self.period}"
        return f"{self.since:%Y-%m-%d %H:%M:%S} – {self.until:%Y-%m-%d %H:%M:%S} UTC"


def iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def url_with(path: str, **params: Any) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value in (None, "", [], ()):
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            pairs.append((key, str(v)))
    return path + (f"?{urlencode(pairs)}" if pairs else "")




def base_path(org: Organization, project: Project) -> str:
    return f"/o/{quote(org.slug)}/p/{quote(project.slug)}"


def store_of(request: Request) -> TelemetryStore:
    return request.app.state.runtime.store  # type: ignore[no-any-return]


# -- formatting ------------------------------------------------------------------------------------


def highlight(text: str, words: list[str]) -> Markup:
    """``text`` escaped, with each occurrence of ``words`` (any case) in <mark>."""
    if not words:
        return escape(text)
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)),
                         re.IGNORECASE)
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append(str(escape(text[last:m.start()])))
        out.append(f"<mark>{escape(m.group(0))}</mark>")
        last = m.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def log_time(value: dt.datetime) -> str:
    return value.strftime("%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


templating.env.filters.update(log_time=log_time, log_level=lq.level_of)


# -- rendering of lines ------------------------------------------------------------------------------


@dataclass
class View:
    """What the line templates need to draw links."""

    base: str
    q: lq.LogQuery
    state: dict[str, Any]

    def search_url(self, **changes: Any) -> str:
        return url_with(f"{self.base}/logs", **{**self.state, **changes})

    def add_term(self, key: str, value: str, negate: bool = False) -> str:
        text = self.state.get("q", "")
        term = lq.Term(key, value, negate)
        tmp = lq.LogQuery(self.q.project_id, self.q.since, self.q.until, terms=[term])
        return self.search_url(q=(text + " " + tmp.search_text()).strip(), cursor=None)

    def trace_url(self, trace_id: str) -> str:
        return f"{self.base}/traces/{trace_id}"

    def context_url(self, row: dict[str, Any]) -> str:
        return url_with(f"{self.base}/logs/context", service=row["service"],
                        at=iso(row["timestamp"]))

    def mark(self, body: str) -> Markup:
        return highlight(body, self.q.text)


def _with_resources(store: TelemetryStore, project_id: int, rows: list[dict[str, Any]]) -> None:
    resources = resource_attributes(store, project_id, {r["resource_id"] for r in rows})
    for r in rows:
        r["resource"] = resources.get(r["resource_id"], {})
        r["level"] = lq.level_of(r["severity_number"])
        r["attributes"] = dict(r["attributes"])


def _fragment(template: str, **context: Any) -> str:
    return templating.env.get_template(template).render(context)


def _query(project: Project, tr: TimeRange, q: str, level: list[str], min_level: str,
           service: list[str], trace_id: str) -> lq.LogQuery:
    levels = [n for n in (lq.level_name(v) for v in level) if n]
    query = lq.LogQuery.parse(project.id, tr.since, tr.until, q, levels=levels,
                              min_level=lq.level_name(min_level) or "",
                              services=[s for s in service if s][:20])
    if trace_id and re.fullmatch(r"[0-9a-fA-F]{1,32}", trace_id.strip()):
        query.trace_id = trace_id.strip().lower()
    return query


class Search:
    """The request's search state: parsed from query parameters, turned back into URLs."""

    def __init__(self, request: Request, project: Project) -> None:
        p = request.query_params
        self.tr = TimeRange.from_params(p.get("period", ""), p.get("since", ""),
                                        p.get("until", ""), "1h")
        self.q = _query(project, self.tr, p.get("q", "")[:2000], p.getlist("level"),
                        p.get("min_level", ""), p.getlist("service"), p.get("trace_id", ""))
        self.state: dict[str, Any] = {
            "q": p.get("q", "")[:2000], "level": [lv for lv in self.q.levels],
            "min_level": self.q.min_level, "service": self.q.services,
            "trace_id": self.q.trace_id, **self.tr.params()}


def _tail_url(view: View, search: Search, after: lq.Cursor) -> str:
    state = {k: v for k, v in search.state.items() if k not in ("since", "until", "period")}
    return url_with(f"{view.base}/logs/tail", after=after.encode(), **state)


# -- pages ---------------------------------------------------------------------------------------------


@router.get("/o/{org_slug}/p/{project_slug}/logs")
def logs_page(request: Request, org_slug: str, project_slug: str,
              caller: Caller = Depends(page_caller), db: Session = Depends(db_session),
              ) -> Response:
    org, project, role = project_of(db, caller, org_slug, project_slug)
    search = Search(request, project)
    store = store_of(request)
    base = base_path(org, project)
    view = View(base, search.q, search.state)
    rows, cursor = lq.page(store, search.q)
    _with_resources(store, project.id, rows)
    hist = lq.histogram(store, search.q, search.tr.step(80))
    facets = lq.facets(store, project.id, search.tr.since, search.tr.until)
    # A tail starts after the newest line that exists now, whatever the range shows.
    live = lq.LogQuery(search.q.project_id, search.q.since, utcnow() + dt.timedelta(days=1),
                       search.q.text, search.q.terms, search.q.levels, search.q.min_level,
                       search.q.services, search.q.trace_id)
    first_run = not rows and not store.scalar(
        "SELECT count(*) FROM (SELECT 1 FROM logs WHERE project_id = {p:UInt64} LIMIT 1) AS x",
        {"p": project.id})
    return templating.render(request, "logs/explore.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": ASSETS, "asset_version": __version__, "view": view, "search": search,
        "rows": rows, "more_url": _more_url(view, search, cursor) if cursor else "",
        "tail_url": _tail_url(view, search, lq.latest_cursor(store, live)),
        "hist": hist, "facets": facets, "periods": list(PERIODS), "levels": list(lq.LEVELS),
        "first_run": first_run, "public_url": request.app.state.runtime.settings.public_url,
    }, db=db)


def _more_url(view: View, search: Search, cursor: lq.Cursor) -> str:
    return url_with(f"{view.base}/logs/more", cursor=cursor.encode(), **search.state)


@router.get("/o/{org_slug}/p/{project_slug}/logs/more")
def logs_more(request: Request, org_slug: str, project_slug: str, cursor: str = "",
              caller: Caller = Depends(page_caller), db: Session = Depends(db_session),
              ) -> Response:
    """The next page of lines, and the "load more" row that fetches the one after."""
    org, project, _ = project_of(db, caller, org_slug, project_slug)
    search = Search(request, project)
    store = store_of(request)
    view = View(base_path(org, project), search.q, search.state)
    rows, nxt = lq.page(store, search.q, lq.Cursor.decode(cursor))
    _with_resources(store, project.id, rows)
    return HTMLResponse(_fragment("logs/_lines.html", rows=rows, view=view,
                                  more_url=_more_url(view, search, nxt) if nxt else ""))


@router.get("/o/{org_slug}/p/{project_slug}/logs/tail")
def logs_tail(request: Request, org_slug: str, project_slug: str, after: str = "",
              caller: Caller = Depends(page_caller), db: Session = Depends(db_session),
              ) -> Response:
    """Lines newer than ``after`` (newest first), and the poller that asks from there on."""
    org, project, _ = project_of(db, caller, org_slug, project_slug)
    search = Search(request, project)
    store = store_of(request)
    view = View(base_path(org, project), search.q, search.state)
    start = lq.Cursor.decode(after) or lq.Cursor(utcnow(), 0)
    q = search.q
    live = lq.LogQuery(q.project_id, start.timestamp, utcnow() + dt.timedelta(days=1), q.text,
                       q.terms, q.levels, q.min_level, q.services, q.trace_id)
    rows, nxt = lq.newer(store, live, start)
    rows.reverse()
    _with_resources(store, project.id, rows)
    return HTMLResponse(_fragment("logs/_tail.html", rows=rows, view=view,
                                  tail_url=_tail_url(view, search, nxt), fresh=True))


@router.get("/o/{org_slug}/p/{project_slug}/logs/context")
def logs_context(request: Request, org_slug: str, project_slug: str,
                 service: str = Query(..., max_length=500), at: str = "",
                 caller: Caller = Depends(page_caller), db: Session = Depends(db_session),
                 ) -> Response:
    """The lines of one service just before and after an instant, that instant's line marked."""
    org, project, role = project_of(db, caller, org_slug, project_slug)
    when = parse_instant(at)
    if when is None:
        raise HTTPException(404, "no such line")
    store = store_of(request)
    before, after = lq.context(store, project.id, service, when)
    rows = before + after
    _with_resources(store, project.id, rows)
    base = base_path(org, project)
    search = Search(request, project)
    view = View(base, search.q, {"service": [service],
                                 "since": iso(when - dt.timedelta(minutes=15)),
                                 "until": iso(when + dt.timedelta(minutes=15))})
    return templating.render(request, "logs/context.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": ASSETS, "asset_version": __version__, "view": view, "rows": rows,
        "anchor": len(before), "service": service, "at": when,
    }, db=db)


# -- JSON API ------------------------------------------------------------------------------------------


class LogLineOut(BaseModel):
    timestamp: dt.datetime
    observed: dt.datetime
    service: str
    severity_number: int
    severity_text: str
    level: str
    body: str
    trace_id: str
    span_id: str
    event_name: str
    scope_name: str
    attributes: dict[str, str]
    resource: dict[str, str]
    source: str


class LogsOut(BaseModel):
    since: dt.datetime
    until: dt.datetime
    lines: list[LogLineOut]
    next_cursor: str | None


@api.get("/projects/{project_id}/logs", response_model=LogsOut)
async def api_logs(
    project_id: int,
    request: Request,
    query: str = Query("", max_length=2000,
                       description="words and quoted phrases that must all occur in the body "
                                   "(any case), and `key=value` / `key!=value` terms on log or "
                                   "resource attributes, `service`, `level`, `trace_id`"),
    severity: str = Query("", description="comma-separated levels: trace, debug, info, warn, "
                                          "error, fatal, unset; `warn+` means warn and above"),
    service: list[str] = Query([], description="only these services (repeat the parameter)"),
    trace_id: str = Query("", max_length=32, description="only lines of this trace"),
    since: str = Query("", description="start, ISO 8601 or epoch seconds (default: "
                                       "`minutes` before until)"),
    until: str = Query("", description="end, ISO 8601 or epoch seconds (default: now)"),
    minutes: int = Query(60, ge=1, le=MAX_RANGE // 60),
    cursor: str = Query("", description="`next_cursor` of the previous page"),
    limit: int = Query(lq.PAGE, ge=1, le=lq.MAX_PAGE),
    caller: Caller = Depends(api_caller),
    db: Session = Depends(db_session),
) -> LogsOut:
    """Log lines matching the search, newest first, a page at a time."""
    project_access(db, caller, project_id, Role.viewer)
    end = parse_instant(until) or utcnow()
    start = parse_instant(since) or end - dt.timedelta(minutes=minutes)
    if start >= end:
        raise HTTPException(422, "since must be before until")
    levels, min_level = [], ""
    for part in severity.split(","):
        part = part.strip()
        if part.endswith("+"):
            min_level = lq.level_name(part[:-1]) or ""
        elif lq.level_name(part):
            levels.append(lq.level_name(part) or "")
    q = lq.LogQuery.parse(project_id, start, end, query, levels=levels, min_level=min_level,
                          services=service[:20])
    if trace_id:
        if not re.fullmatch(r"[0-9a-fA-F]{1,32}", trace_id):
            raise HTTPException(422, "trace_id is hexadecimal")
        q.trace_id = trace_id.lower()
    decoded = lq.Cursor.decode(cursor) if cursor else None
    if cursor and decoded is None:
        raise HTTPException(422, "invalid cursor")
    store = store_of(request)

    def run() -> tuple[list[dict[str, Any]], lq.Cursor | None]:
        rows, nxt = lq.page(store, q, decoded, limit)
        _with_resources(store, project_id, rows)
        return rows, nxt

    rows, nxt = await run_in_threadpool(run)
    fields = LogLineOut.model_fields
    return LogsOut(since=start, until=end, next_cursor=nxt.encode() if nxt else None,
                   lines=[LogLineOut(**{k: r[k] for k in fields}) for r in rows])


def install(app: FastAPI) -> None:
    if not any(getattr(r, "path", "") == ASSETS for r in app.routes):
        app.mount(ASSETS, StaticFiles(directory=STATIC), name="explore-assets")
    app.include_router(router)
    app.include_router(api)
