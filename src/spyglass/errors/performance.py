"""Performance: the transactions of a project with throughput, latency, failures and Apdex.

Pages: ``/o/{org}/p/{project}/performance`` (charts and the sortable transactions table) and
``.../performance/summary?transaction=NAME`` (one transaction: percentiles over time, duration
histogram, statuses, slowest and most recent with their traces, the span breakdown of the
slowest, related issues). JSON: ``GET /api/v1/projects/{project_id}/transactions``.
Reading needs the viewer role. Figures come from :mod:`spyglass.errors.performance_queries`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from spyglass import __version__
from spyglass.errors import performance_queries as pq
from spyglass.errors.models import Issue
from spyglass.errors.queries import format_short_id
from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.deps import (
    Caller,
    api_caller,
    db_session,
    page_caller,
    project_access,
)
from spyglass.kernel.auth.deps import project_by_slug as _project
from spyglass.kernel.meta.models import Project, Role
from spyglass.kernel.telemetry import TelemetryStore
from spyglass.kernel.web import templating

templating.add_template_dir(Path(__file__).parent / "templates")
templating.register_area("performance", "/o/{org}/p/{project}/performance")

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["performance"])

#: API periods: a number and a unit, as Sentry's ``statsPeriod`` (``30m``, ``24h``, ``7d``, ``2w``).
STATS_PERIOD = re.compile(r"^(\d{1,5})([mhdw])$")
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_API_SECONDS = 90 * 86400
MAX_THRESHOLD_MS = 600_000


# -- formatting ---------------------------------------------------------------------------------


def duration(ms: float | None) -> str:
    """245 → '245 ms', 3.456 → '3.46 ms', 1534 → '1.53 s', 95000 → '1.58 min'."""
    if ms is None:
        return "—"
    if ms == 0:
        return "0 ms"
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.2f} min"


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0%"
    if value < 0.001:
        return "<0.1%"
    return f"{value * 100:.1f}%".replace(".0%", "%")


def rate(value: float) -> str:
    """Transactions per minute, readable at both ends: 0.0035 → '<0.01', 12.34 → '12.3'."""
    if value == 0:
        return "0"
    if value < 0.01:
        return "<0.01"
    if value < 10:
        return f"{value:.2f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value / 1000:.1f}k"


def apdex_class(value: float | None) -> str:
    """Apdex ratings of the standard: ≥ .94 excellent, ≥ .85 good, ≥ .70 fair, ≥ .50 poor."""
    if value is None:
        return "none"
    return "good" if value >= 0.85 else "fair" if value >= 0.7 else "poor"


def waterfall_bar(offset_ms: float, duration_ms: float, total_ms: float) -> Markup:
    total = max(total_ms, 1e-9)
    left = min(max(offset_ms / total * 100, 0.0), 100.0)
    width = min(max(duration_ms / total * 100, 0.4), 100.0 - left if left < 99.6 else 0.4)
    return Markup(f'<span class="wf-bar" style="left:{left:.3f}%;width:{width:.3f}%"></span>')


def histogram_svg(hist: pq.Histogram, height: int = 150) -> Markup:
    """The duration histogram as SVG bars with a tooltip per bin (numbers only)."""
    n = len(hist.counts)
    width = 1000
    peak = max(hist.peak, 1)
    step = width / max(n, 1)
    gap = min(6.0, step * 0.2)
    bars = []
    for i, (lo, hi, count) in enumerate(hist.bins()):
        h = 0.0 if count == 0 else max(2.0, (height - 4) * count / peak)
        label = f"≥ {duration(lo)}" if i == n - 1 else f"{duration(lo)} – {duration(hi)}"
        bars.append(f'<g class="bar"><rect class="hit" x="{i * step:.1f}" y="0" width="{step:.1f}" '
                    f'height="{height}"/><rect x="{i * step + gap / 2:.1f}" y="{height - h:.1f}" '
                    f'width="{max(step - gap, 1):.1f}" height="{h:.1f}"/><title>{count} · '
                    f'{label}</title></g>')
    ticks = "".join(f'<span style="left:{100 * i / n:.2f}%">{duration(hist.bins()[i][0])}</span>'
                    for i in range(0, n, max(1, n // 5)))
    return Markup(
        f'<div class="hist"><svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="Duration histogram of {hist.total} transactions">'
        f'<line x1="0" x2="{width}" y1="{height - 0.5}" y2="{height - 0.5}" class="axis"/>'
        + "".join(bars) + f'</svg><div class="hist-x">{ticks}</div></div>')


templating.env.filters.update(duration=duration, percent=percent, tpm=rate,
                              apdex_class=apdex_class)
templating.env.globals.update(waterfall_bar=waterfall_bar, histogram_svg=histogram_svg)


# -- helpers ------------------------------------------------------------------------------------




def _store(request: Request) -> TelemetryStore:
    return request.app.state.runtime.store  # type: ignore[no-any-return]


def _threshold(db: Session, project_id: int, override: int | None) -> int:
    if override is not None and 1 <= override <= MAX_THRESHOLD_MS:
        return override
    return pq.apdex_threshold(db, project_id)


def _url(path: str, **params: Any) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return path + (f"?{urlencode(clean)}" if clean else "")


def _setup(request: Request, db: Session, project: Project) -> dict[str, Any]:
    """DSN and OTLP endpoint for the empty state."""
    key = accounts.active_key(db, project)
    public_url = request.app.state.runtime.settings.public_url.rstrip("/")
    return {
        "dsn": accounts.dsn(public_url, project, key) if key is not None else None,
        "public_key": key.public_key if key is not None else None,
        "public_url": public_url,
    }


def _issues(db: Session, project: Project, related: list[pq.RelatedIssue]
            ) -> list[dict[str, Any]]:
    if not related:
        return []
    ids = [r.issue_id for r in related]
    issues = {i.id: i for i in db.scalars(select(Issue).where(Issue.project_id == project.id,
                                                                Issue.id.in_(ids)))}
    out = []
    for r in related:
        issue = issues.get(r.issue_id)
        if issue is not None:
            out.append({"issue": issue, "short_id": format_short_id(project.slug, issue.short_id),
                        "events": r.events, "users": r.users, "last_seen": r.last_seen})
    return out


# -- pages --------------------------------------------------------------------------------------


@router.get("/o/{org_slug}/p/{project_slug}/performance")
def performance_page(
    request: Request,
    org_slug: str,
    project_slug: str,
    period: str = pq.DEFAULT_PERIOD,
    environment: str = "",
    release: str = "",
    sort: str = pq.DEFAULT_SORT,
    threshold: int | None = None,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug)
    period = period if period in pq.PERIODS else pq.DEFAULT_PERIOD
    key, desc = pq.parse_sort(sort)
    sort = ("-" if desc else "") + key
    t = _threshold(db, project.id, threshold)
    store = _store(request)
    res = pq.resources(store, project.id)
    f = pq.Filters.for_period(project.id, period, environment=environment, release=release,
                              threshold_ms=t)
    rows = pq.transactions(store, f, sort, res)
    first_run = not rows and not pq.has_transactions(store, project.id)
    base = f"/o/{quote(org.slug)}/p/{quote(project.slug)}"
    state = {"period": period, "environment": environment, "release": release, "sort": sort,
             "threshold": threshold if threshold == t else None}

    def url(**changes: Any) -> str:
        merged = {**state, **changes}
        if merged.get("period") == pq.DEFAULT_PERIOD:
            merged["period"] = None
        if merged.get("sort") == pq.DEFAULT_SORT:
            merged["sort"] = None
        return _url(f"{base}/performance", **merged)

    def summary_url(name: str) -> str:
        return _url(f"{base}/performance/summary", transaction=name, **{
            k: v for k, v in state.items() if k in ("period", "environment", "release",
                                                    "threshold")
            and not (k == "period" and v == pq.DEFAULT_PERIOD)})

    def sort_url(column: str) -> str:
        default_desc = pq.COLUMNS[column][1]
        if key == column:
            return url(sort=("" if desc else "-") + column)
        return url(sort=("-" if default_desc else "") + column)

    return templating.render(request, "performance/list.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": "/assets/errors", "asset_version": __version__,
        "rows": rows, "total": pq.totals(store, f, res) if rows else None,
        "series": pq.series(store, f, pq.PERIODS[period][1], res).as_json() if rows else None,
        "facets": pq.facets(store, project.id, f.until - dt.timedelta(days=30), res),
        "state": state, "periods": list(pq.PERIODS), "url": url, "sort_url": sort_url,
        "summary_url": summary_url, "sort_key": key, "sort_desc": desc, "columns": pq.COLUMNS,
        "threshold": t, "first_run": first_run,
        "setup": _setup(request, db, project) if first_run else None,
    }, db=db)


@router.get("/o/{org_slug}/p/{project_slug}/performance/summary")
def transaction_summary(
    request: Request,
    org_slug: str,
    project_slug: str,
    transaction: str = Query(..., max_length=500),
    period: str = pq.DEFAULT_PERIOD,
    environment: str = "",
    release: str = "",
    threshold: int | None = None,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug)
    period = period if period in pq.PERIODS else pq.DEFAULT_PERIOD
    t = _threshold(db, project.id, threshold)
    store = _store(request)
    res = pq.resources(store, project.id)
    f = pq.Filters.for_period(project.id, period, environment=environment, release=release,
                              threshold_ms=t)
    figures = pq.totals(store, f, res, name=transaction)
    slowest = pq.samples(store, f, transaction, "slowest", 10, res) if figures.count else []
    recent = pq.samples(store, f, transaction, "recent", 10, res) if figures.count else []
    spans = pq.span_tree(store, project.id, slowest[0].trace_id, slowest[0].span_id) \
        if slowest else []
    base = f"/o/{quote(org.slug)}/p/{quote(project.slug)}"
    state = {"period": period, "environment": environment, "release": release,
             "threshold": threshold if threshold == t else None}

    def url(**changes: Any) -> str:
        merged = {**state, **changes}
        if merged.get("period") == pq.DEFAULT_PERIOD:
            merged["period"] = None
        return _url(f"{base}/performance/summary", transaction=transaction, **merged)

    back = {k: v for k, v in state.items() if k != "period" or v != pq.DEFAULT_PERIOD}
    return templating.render(request, "performance/summary.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": "/assets/errors", "asset_version": __version__,
        "name": transaction, "figures": figures, "threshold": t,
        "series": pq.series(store, f, pq.PERIODS[period][1], res, transaction).as_json()
        if figures.count else None,
        "histogram": pq.histogram(store, f, transaction, figures.min_ms, figures.p99, res)
        if figures.count else None,
        "statuses": pq.status_breakdown(store, f, transaction, res) if figures.count else [],
        "slowest": slowest, "recent": recent, "spans": spans,
        "span_total": max((s.offset_ms + s.duration_ms for s in spans), default=0.0),
        "ops": pq.op_breakdown(spans),
        "related": _issues(db, project, pq.related_issues(store, f, transaction)),
        "facets": pq.facets(store, project.id, f.until - dt.timedelta(days=30), res),
        "state": state, "periods": list(pq.PERIODS), "url": url,
        "list_url": _url(f"{base}/performance", **back),
    }, db=db)


# -- JSON API -----------------------------------------------------------------------------------


class TransactionOut(BaseModel):
    name: str
    op: str
    count: int
    tpm: float
    p50_ms: float | None
    p75_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    failures: int
    failure_rate: float
    apdex: float | None
    satisfied: int
    tolerating: int
    frustrated: int
    users: int
    users_affected: int


class TransactionsOut(BaseModel):
    statsPeriod: str
    since: dt.datetime
    until: dt.datetime
    apdex_threshold_ms: int
    totals: TransactionOut
    transactions: list[TransactionOut]


def _period_seconds(text: str) -> int:
    match = STATS_PERIOD.match(text)
    if match is None:
        raise HTTPException(400, "statsPeriod is a number and a unit: 30m, 24h, 7d, 2w")
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= MAX_API_SECONDS:
        raise HTTPException(400, "statsPeriod must be between 1 minute and 90 days")
    return seconds


@api.get("/projects/{project_id}/transactions", response_model=TransactionsOut)
async def list_transactions(
    project_id: int,
    request: Request,
    stats_period: str = Query("24h", alias="statsPeriod",
                              description="window ending now: 30m, 1h, 24h, 7d, 14d, 2w ..."),
    environment: str = Query("", description="only this environment"),
    release: str = Query("", description="only this release (OpenTelemetry: service.version)"),
    sort: str = Query(pq.DEFAULT_SORT, description="column, '-' for descending: "
                                                   + ", ".join(pq.COLUMNS)),
    threshold: int | None = Query(None, ge=1, le=MAX_THRESHOLD_MS,
                                  description="Apdex threshold T in ms (default: the project's)"),
    caller: Caller = Depends(api_caller),
    db: Session = Depends(db_session),
) -> TransactionsOut:
    """Every transaction name in the window with throughput, percentiles, failure rate, Apdex
    and users affected (distinct users with a failed or frustrated, > 4T, transaction)."""
    project_access(db, caller, project_id, Role.viewer)
    seconds = _period_seconds(stats_period)
    t = _threshold(db, project_id, threshold)
    until = pq.utcnow()
    f = pq.Filters(project_id, until - dt.timedelta(seconds=seconds), until,
                   environment=environment, release=release, threshold_ms=t)
    store = _store(request)

    def compute() -> tuple[list[pq.Figures], pq.Figures]:
        res = pq.resources(store, project_id)
        return pq.transactions(store, f, sort, res), pq.totals(store, f, res)

    rows, total = await run_in_threadpool(compute)
    return TransactionsOut(
        statsPeriod=stats_period, since=f.since, until=f.until, apdex_threshold_ms=t,
        totals=TransactionOut(**total.as_dict()),
        transactions=[TransactionOut(**r.as_dict()) for r in rows],
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(api)
