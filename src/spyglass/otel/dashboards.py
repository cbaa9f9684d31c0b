"""Dashboards: named, ordered sets of metric charts of one project, with a shared time range.

A panel stores its query definition as JSON (:class:`spyglass.otel.metrics_queries.MetricQuery`
``.to_json()``: metric, aggregation, filters, group_by); the time range is the dashboard's.
Pages under ``/o/{org}/p/{project}/metrics/dashboards``: the list (and a form to create one),
a dashboard, renaming, deleting, moving and removing panels, and "save to dashboard" from the
metrics explorer. Viewing needs the viewer role, changing anything the member role.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import JSON, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from spyglass import __version__
from spyglass.kernel.auth.deps import Caller, db_session, page_caller
from spyglass.kernel.meta.models import Base, Project, Role, UTCDateTime, utcnow
from spyglass.kernel.web import templating
from spyglass.otel import metrics_queries as mq
from spyglass.otel.logs_pages import (
    ASSETS,
    PERIODS,
    TimeRange,
    base_path,
    project_of,
    store_of,
    url_with,
)

MAX_NAME = 200
MAX_PANELS = 40

router = APIRouter(include_in_schema=False)


class Dashboard(Base):
    __tablename__ = "dashboards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            index=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME))
    description: Mapped[str] = mapped_column(Text, default="")
    #: The time range the dashboard opens with (a key of ``PERIODS``).
    period: Mapped[str] = mapped_column(String(16), default="6h")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                   nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    panels: Mapped[list[DashboardPanel]] = relationship(
        back_populates="dashboard", order_by="DashboardPanel.position",
        cascade="all, delete-orphan")


class DashboardPanel(Base):
    __tablename__ = "dashboard_panels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dashboard_id: Mapped[int] = mapped_column(ForeignKey("dashboards.id", ondelete="CASCADE"),
                                              index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(MAX_NAME))
    #: ``MetricQuery.to_json()``: {"metric", "aggregation", "filters", "group_by"}.
    query: Mapped[dict] = mapped_column(JSON)  # type: ignore[type-arg]
    dashboard: Mapped[Dashboard] = relationship(back_populates="panels")


def dashboards_of(db: Session, project_id: int) -> list[Dashboard]:
    return list(db.scalars(select(Dashboard).where(Dashboard.project_id == project_id)
                           .order_by(func.lower(Dashboard.name), Dashboard.id)))


def _dashboard(db: Session, project: Project, dashboard_id: int) -> Dashboard:
    d = db.get(Dashboard, dashboard_id)
    if d is None or d.project_id != project.id:
        raise HTTPException(404, "no such dashboard")
    return d


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _name(value: Any) -> str:
    name = " ".join(str(value or "").split())[:MAX_NAME]
    if not name:
        raise HTTPException(422, "a dashboard needs a name")
    return name


def _add_panel(db: Session, d: Dashboard, title: str, query: mq.MetricQuery) -> DashboardPanel:
    if len(d.panels) >= MAX_PANELS:
        raise HTTPException(422, f"a dashboard holds at most {MAX_PANELS} panels")
    panel = DashboardPanel(dashboard=d, title=title[:MAX_NAME] or query.metric[:MAX_NAME],
                           position=(max((p.position for p in d.panels), default=-1) + 1),
                           query=query.to_json())
    db.add(panel)
    d.updated_at = utcnow()
    return panel


# -- pages -------------------------------------------------------------------------------------


def _dash_base(org_slug: str, project_slug: str, db: Session, caller: Caller,
               need: Role = Role.viewer) -> tuple[Any, Project, Role, str]:
    org, project, role = project_of(db, caller, org_slug, project_slug, need)
    return org, project, role, base_path(org, project) + "/metrics/dashboards"


@router.get("/o/{org_slug}/p/{project_slug}/metrics/dashboards")
def list_page(request: Request, org_slug: str, project_slug: str,
              caller: Caller = Depends(page_caller), db: Session = Depends(db_session),
              ) -> Response:
    org, project, role, here = _dash_base(org_slug, project_slug, db, caller)
    items = dashboards_of(db, project.id)
    counts = dict(db.execute(select(DashboardPanel.dashboard_id, func.count()).where(
        DashboardPanel.dashboard_id.in_([d.id for d in items]))
        .group_by(DashboardPanel.dashboard_id)).all()) if items else {}
    return templating.render(request, "metrics/dashboards.html", {
        "caller": caller, "org": org, "project": project, "role": role,
        "base": base_path(org, project), "here": here, "assets": ASSETS,
        "asset_version": __version__, "dashboards": items, "counts": counts,
        "can_write": role.at_least(Role.member), "periods": list(PERIODS),
    }, db=db)


@router.post("/o/{org_slug}/p/{project_slug}/metrics/dashboards")
async def create_dashboard(request: Request, org_slug: str, project_slug: str,
                           caller: Caller = Depends(page_caller),
                           db: Session = Depends(db_session)) -> Response:
    _, project, _, here = _dash_base(org_slug, project_slug, db, caller, Role.member)
    form = await request.form()
    period = str(form.get("period") or "6h")
    d = Dashboard(project_id=project.id, name=_name(form.get("name")),
                  description=str(form.get("description") or "")[:2000],
                  period=period if period in PERIODS else "6h", created_by=caller.user.id)
    db.add(d)
    db.commit()
    return _redirect(f"{here}/{d.id}")


@router.post("/o/{org_slug}/p/{project_slug}/metrics/dashboards/add-panel")
async def add_panel(request: Request, org_slug: str, project_slug: str,
                    caller: Caller = Depends(page_caller),
                    db: Session = Depends(db_session)) -> Response:
    """Save the explorer's chart to an existing or a new dashboard."""
    _, project, _, here = _dash_base(org_slug, project_slug, db, caller, Role.member)
    form = await request.form()
    try:
        query = mq.MetricQuery.from_json(orjson.loads(str(form.get("query") or "")))
    except (mq.QueryError, orjson.JSONDecodeError) as exc:
        raise HTTPException(422, f"invalid query: {exc}") from exc
    aggregation = str(form.get("aggregation") or "")
    if aggregation in mq.AGGREGATIONS:
        query.aggregation = aggregation
    target = str(form.get("dashboard") or "new")
    if target == "new":
        d = Dashboard(project_id=project.id, name=_name(form.get("new_name") or "New dashboard"),
                      created_by=caller.user.id)
        db.add(d)
        db.flush()
    else:
        d = _dashboard(db, project, int(target) if target.isdigit() else 0)
    _add_panel(db, d, " ".join(str(form.get("title") or "").split()), query)
    db.commit()
    return _redirect(f"{here}/{d.id}")


@router.get("/o/{org_slug}/p/{project_slug}/metrics/dashboards/{dashboard_id}")
def dashboard_page(request: Request, org_slug: str, project_slug: str, dashboard_id: int,
                   period: str = "", since: str = "", until: str = "",
                   caller: Caller = Depends(page_caller), db: Session = Depends(db_session),
                   ) -> Response:
    org, project, role, here = _dash_base(org_slug, project_slug, db, caller)
    d = _dashboard(db, project, dashboard_id)
    tr = TimeRange.from_params(period, since, until, d.period if d.period in PERIODS else "6h")
    store = store_of(request)
    base = base_path(org, project)
    panels = []
    for p in d.panels:
        try:
            query = mq.MetricQuery.from_json(p.query)
            result = mq.run(store, project.id, query, tr.since, tr.until, points=90)
            error = "" if result.info else f"No metric named {query.metric!r}."
        except mq.QueryError as exc:
            query, result, error = None, None, str(exc)
        explore = url_with(f"{base}/metrics", metric=p.query.get("metric"),
                           agg=p.query.get("aggregation"),
                           filters=" ".join(p.query.get("filters") or []),
                           group_by=", ".join(p.query.get("group_by") or []), **tr.params())
        panels.append({"panel": p, "query": query, "result": result, "error": error,
                       "explore": explore})
    state = tr.params()
    return templating.render(request, "metrics/dashboard.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "here": here, "assets": ASSETS, "asset_version": __version__, "dashboard": d,
        "panels": panels, "tr": tr, "periods": list(PERIODS), "state": state,
        "url": lambda **c: url_with(f"{here}/{d.id}", **{**state, **c}),
        "can_write": role.at_least(Role.member),
    }, db=db)


@router.post("/o/{org_slug}/p/{project_slug}/metrics/dashboards/{dashboard_id}/edit")
async def edit_dashboard(request: Request, org_slug: str, project_slug: str, dashboard_id: int,
                         caller: Caller = Depends(page_caller),
                         db: Session = Depends(db_session)) -> Response:
    _, project, _, here = _dash_base(org_slug, project_slug, db, caller, Role.member)
    d = _dashboard(db, project, dashboard_id)
    form = await request.form()
    d.name = _name(form.get("name"))
    d.description = str(form.get("description") or "")[:2000]
    period = str(form.get("period") or d.period)
    d.period = period if period in PERIODS else d.period
    d.updated_at = utcnow()
    db.commit()
    return _redirect(f"{here}/{d.id}")


@router.post("/o/{org_slug}/p/{project_slug}/metrics/dashboards/{dashboard_id}/delete")
async def delete_dashboard(request: Request, org_slug: str, project_slug: str,
                           dashboard_id: int, caller: Caller = Depends(page_caller),
                           db: Session = Depends(db_session)) -> Response:
    _, project, _, here = _dash_base(org_slug, project_slug, db, caller, Role.member)
    db.delete(_dashboard(db, project, dashboard_id))
    db.commit()
    return _redirect(here)


@router.post("/o/{org_slug}/p/{project_slug}/metrics/dashboards/{dashboard_id}/panels/"
             "{panel_id}/{action}")
async def panel_action(request: Request, org_slug: str, project_slug: str, dashboard_id: int,
                       panel_id: int, action: str, caller: Caller = Depends(page_caller),
                       db: Session = Depends(db_session)) -> Response:
    """``up``, ``down``, ``delete`` or ``rename`` (form field ``title``) a panel."""
    _, project, _, here = _dash_base(org_slug, project_slug, db, caller, Role.member)
    d = _dashboard(db, project, dashboard_id)
    panels = list(d.panels)
    index = next((i for i, p in enumerate(panels) if p.id == panel_id), None)
    if index is None:
        raise HTTPException(404, "no such panel")
    if action == "delete":
        d.panels.remove(panels[index])
    elif action in ("up", "down"):
        other = index - 1 if action == "up" else index + 1
        if 0 <= other < len(panels):
            panels[index], panels[other] = panels[other], panels[index]
        for position, p in enumerate(panels):
            p.position = position
    elif action == "rename":
        form = await request.form()
        panels[index].title = " ".join(str(form.get("title") or "").split())[:MAX_NAME] \
            or panels[index].title
    else:
        raise HTTPException(404, "no such action")
    d.updated_at = utcnow()
    db.commit()
    return _redirect(f"{here}/{d.id}")


def install(app: FastAPI) -> None:
    app.include_router(router)
