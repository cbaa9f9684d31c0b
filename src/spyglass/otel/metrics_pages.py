"""The metrics explorer: pick a metric, filter and group by attributes, aggregate, chart.

Page: ``/o/{org}/p/{project}/metrics`` (``?metric=&agg=&filters=&group_by=&period=``). A chart
can be saved to a dashboard (see :mod:`spyglass.otel.dashboards`). JSON:
``GET /api/v1/projects/{project_id}/metrics`` (the catalogue) and
``GET|POST /api/v1/projects/{project_id}/metrics/query`` (a query definition → series).
Reading needs the viewer role. The arithmetic is in :mod:`spyglass.otel.metrics_queries`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from spyglass import __version__
from spyglass.kernel.auth.deps import Caller, api_caller, db_session, page_caller, project_access
from spyglass.kernel.meta.models import Role
from spyglass.kernel.web import templating
from spyglass.otel import metrics_queries as mq
from spyglass.otel.logs_pages import (
    ASSETS,
    MAX_RANGE,
    PERIODS,
    TimeRange,
    base_path,
    parse_instant,
    project_of,
    store_of,
    url_with,
    utcnow,
)

templating.add_template_dir(Path(__file__).parent / "templates")
templating.register_area("metrics", "/o/{org}/p/{project}/metrics")

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["metrics"])

#: How far back the catalogue looks for metrics.
CATALOGUE_DAYS = 30


def number(v: float | None) -> str:
    """Compact figures for legends: 1234567 → 1.23M, 0.000123 → 0.000123."""
    if v is None:
        return "—"
    a = abs(v)
    if a == 0:
        return "0"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if a >= size:
            return f"{v / size:.2f}{suffix}" if size > 1e4 else f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


templating.env.filters.update(metric_number=number)


def _aggregation_label(agg: str) -> str:
    return {"rate": "rate /s", "increase": "increase per step", "sum": "sum", "avg": "avg",
            "min": "min", "max": "max", "last": "last"}.get(agg, agg)


templating.env.globals.update(aggregation_label=_aggregation_label)


@router.get("/o/{org_slug}/p/{project_slug}/metrics")
def metrics_page(request: Request, org_slug: str, project_slug: str, metric: str = "",
                 agg: str = "auto", filters: str = "", group_by: str = "",
                 period: str = "", since: str = "", until: str = "", find: str = "",
                 caller: Caller = Depends(page_caller), db: Session = Depends(db_session),
                 ) -> Response:
    from spyglass.otel.dashboards import dashboards_of

    org, project, role = project_of(db, caller, org_slug, project_slug)
    tr = TimeRange.from_params(period, since, until, "1h")
    store = store_of(request)
    base = base_path(org, project)
    catalogue = mq.list_metrics(store, project.id, utcnow() - dt.timedelta(days=CATALOGUE_DAYS))
    error = ""
    result = None
    query = None
    keys: dict[str, list[str]] = {}
    if metric:
        try:
            query = mq.MetricQuery.from_text(metric[:500], agg, filters[:4000], group_by[:1000])
        except mq.QueryError as exc:
            error = str(exc)
        if query is not None:
            result = mq.run(store, project.id, query, tr.since, tr.until)
            keys = mq.attribute_values(store, project.id, metric, tr.since -
                                       dt.timedelta(days=1))
            if result.info is None:
                error = f"No metric named {metric!r} in this project."
    state = {"metric": metric, "agg": agg if agg != "auto" else "", "filters": filters,
             "group_by": group_by, **tr.params()}

    def url(**changes: Any) -> str:
        return url_with(f"{base}/metrics", **{**state, **changes})

    return templating.render(request, "metrics/explore.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": ASSETS, "asset_version": __version__, "tr": tr, "periods": list(PERIODS),
        "catalogue": catalogue, "result": result, "query": query, "keys": keys,
        "error": error, "state": state, "url": url, "find": find,
        "can_write": role.at_least(Role.member),
        "dashboards": dashboards_of(db, project.id) if result and result.info else [],
        "series_json": result.as_json() if result and result.info else None,
    }, db=db)


# -- JSON API ------------------------------------------------------------------------------------


class MetricOut(BaseModel):
    name: str
    type: str
    kind: str
    unit: str
    description: str
    temporality: str
    monotonic: bool
    series: int
    points: int
    last_seen: dt.datetime | None
    aggregations: list[str]


class MetricsOut(BaseModel):
    since: dt.datetime
    metrics: list[MetricOut]


class QueryIn(BaseModel):
    metric: str = Field(..., max_length=500)
    aggregation: str = Field("auto", description="auto (the metric type's default), rate, "
                                                 "increase, sum, avg, min, max, last, p50, p75, "
                                                 "p90, p95, p99")
    filters: list[str] = Field(default_factory=list, description="`key=value` or `key!=value` "
                                                                 "on point or resource "
                                                                 "attributes, or `service`")
    group_by: list[str] = Field(default_factory=list, description="attribute keys (or "
                                                                  "`service`)")
    since: str = Field("", description="ISO 8601 or epoch seconds; default: `period` before "
                                       "until")
    until: str = Field("", description="ISO 8601 or epoch seconds; default: now")
    period: str = Field("1h", description=", ".join(PERIODS))
    step: int | None = Field(None, ge=1, le=86400, description="seconds per point (default: "
                                                               "about 120 points, at least 1.5 "
                                                               "export intervals)")


class SeriesOut(BaseModel):
    label: str
    group: dict[str, str]
    values: list[float | None]


class QueryOut(BaseModel):
    metric: str
    type: str
    unit: str
    aggregation: str
    since: dt.datetime
    until: dt.datetime
    step: int
    timestamps: list[int] = Field(description="start of each step, epoch seconds")
    series: list[SeriesOut]
    points_read: int
    truncated: bool


TEMPORALITY = {0: "none", 1: "delta", 2: "cumulative"}


@api.get("/projects/{project_id}/metrics", response_model=MetricsOut)
async def api_metrics(project_id: int, request: Request,
                      search: str = Query("", max_length=200, description="part of the name"),
                      days: int = Query(CATALOGUE_DAYS, ge=1, le=400,
                                        description="metrics seen in the last `days` days"),
                      caller: Caller = Depends(api_caller),
                      db: Session = Depends(db_session)) -> MetricsOut:
    """The project's metrics with type, unit, description, series count and aggregations."""
    project_access(db, caller, project_id, Role.viewer)
    since = utcnow() - dt.timedelta(days=days)
    infos = await run_in_threadpool(mq.list_metrics, store_of(request), project_id, since, search)
    return MetricsOut(since=since, metrics=[MetricOut(
        name=i.name, type=i.type, kind=i.kind, unit=i.unit, description=i.description,
        temporality=TEMPORALITY.get(i.temporality, str(i.temporality)), monotonic=i.monotonic,
        series=i.series, points=i.points, last_seen=i.last_seen, aggregations=i.aggregations)
        for i in infos])


def _run_query(request: Request, project_id: int, body: QueryIn) -> QueryOut:
    try:
        query = mq.MetricQuery.from_json(body.model_dump())
    except mq.QueryError as exc:
        raise HTTPException(422, str(exc)) from exc
    end = parse_instant(body.until) or utcnow()
    start = parse_instant(body.since) or end - dt.timedelta(
        seconds=PERIODS.get(body.period, 3600))
    if start >= end or (end - start).total_seconds() > MAX_RANGE:
        raise HTTPException(422, "since must be before until, at most 400 days apart")
    if body.step and (end - start).total_seconds() / body.step > 5000:
        raise HTTPException(422, "at most 5000 steps")
    result = mq.run(store_of(request), project_id, query, start, end, body.step)
    if result.info is None:
        raise HTTPException(404, "no such metric")
    data = result.as_json()
    return QueryOut(metric=query.metric, type=result.info.type, unit=result.info.unit,
                    aggregation=result.aggregation, since=start, until=end, step=result.step,
                    timestamps=result.x, points_read=result.points, truncated=result.truncated,
                    series=[SeriesOut(**s) for s in data["series"]])


@api.get("/projects/{project_id}/metrics/query", response_model=QueryOut)
async def api_query(project_id: int, request: Request,
                    metric: str = Query(..., max_length=500),
                    aggregation: str = Query("auto"),
                    filter: list[str] = Query([], description="`key=value` or `key!=value`; "
                                                              "repeat the parameter"),
                    group_by: list[str] = Query([], description="attribute key; repeat"),
                    since: str = "", until: str = "", period: str = "1h",
                    step: int | None = Query(None, ge=1, le=86400),
                    caller: Caller = Depends(api_caller),
                    db: Session = Depends(db_session)) -> QueryOut:
    """One series per group of the metric, aggregated per step (see docs/metrics.md)."""
    project_access(db, caller, project_id, Role.viewer)
    body = QueryIn(metric=metric, aggregation=aggregation, filters=filter, group_by=group_by,
                   since=since, until=until, period=period, step=step)
    return await run_in_threadpool(_run_query, request, project_id, body)


@api.post("/projects/{project_id}/metrics/query", response_model=QueryOut)
async def api_query_post(project_id: int, body: QueryIn, request: Request,
                         caller: Caller = Depends(api_caller),
                         db: Session = Depends(db_session)) -> QueryOut:
    """The same as GET, with the definition as a JSON body (as dashboards store it)."""
    project_access(db, caller, project_id, Role.viewer)
    return await run_in_threadpool(_run_query, request, project_id, body)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(api)

