"""The service map and each service's RED metrics.

Pages: ``/o/{org}/p/{project}/services`` (the map: services as nodes, calls as edges, each
with rate, errors and latency; and the tables behind it) and
``/o/{org}/p/{project}/services/{service}`` (rate, errors and duration over time, top
operations, callers and callees). JSON: ``GET /api/v1/projects/{project_id}/service-map``.

Edges are computed when asked, from stored spans, so spans of one trace that arrived in
different requests (or from different processes) still pair up: a span whose parent span
belongs to another service is one call ``parent.service → child.service`` (a self-join on
``trace_id`` and ``parent_span_id = span_id`` over the time range). A client or producer span
that names a ``peer.service`` (or a ``db.system``) and has no child span is a call to an
external node. The map is drawn on the server as SVG by a small layered layout
(:func:`layout`), readable without JavaScript.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from spyglass import __version__
from spyglass.kernel.auth.deps import Caller, api_caller, db_session, page_caller, project_access
from spyglass.kernel.meta.models import Role
from spyglass.kernel.telemetry import TelemetryStore
from spyglass.kernel.web import templating
from spyglass.otel.api import service_red
from spyglass.otel.traces_pages import (
    ASSETS,
    base_path,
    has_spans,
    project_for,
    project_palette,
    setup_info,
    store_of,
)

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["traces"])

#: Windows offered: label → (seconds, chart bucket seconds).
PERIODS = {"15m": (900, 30), "1h": (3600, 60), "6h": (6 * 3600, 300),
           "24h": (86400, 900), "7d": (7 * 86400, 7200)}
DEFAULT_PERIOD = "1h"
ENTRY = "(kind IN (2, 5) OR parent_span_id = '')"
#: Parents may start before the window: look this far back for them.
PARENT_SLACK = dt.timedelta(hours=1)


# -- figures ------------------------------------------------------------------------------------


@dataclass
class Red:
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    rate: float = 0.0  # per second

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass
class Edge:
    source: str
    target: str
    red: Red
    external: bool = False  # the target sent no spans: peer.service or a database
    db: bool = False  # an external target named by db.system


@dataclass
class ServiceNode:
    name: str
    red: Red
    spans: int = 0
    external: str = ""  # "" for a service with spans, else "peer" or "database"


def _quantiles(store: TelemetryStore, column: str, qs: str = "0.5, 0.95, 0.99",
               where: str = "") -> str:
    if store.dialect == "clickhouse":
        if where:
            return f"quantilesIf({qs})({column}, {where})"
        return f"quantiles({qs})({column})"
    tail = f" FILTER (WHERE {where})" if where else ""
    return f"quantile_cont({column}, [{qs}]){tail}"


def _ms(q: list[Any] | None, i: int) -> float | None:
    q = list(q or [])
    if len(q) <= i or q[i] is None or (isinstance(q[i], float) and math.isnan(q[i])):
        return None
    return float(q[i]) / 1e6


def _red(row: dict[str, Any], seconds: float, count: str = "requests") -> Red:
    n = int(row[count] or 0)
    q = row.get("q") if n else None
    return Red(n, int(row["errors"] or 0), _ms(q, 0), _ms(q, 1), _ms(q, 2),
               n / seconds if seconds > 0 else 0.0)


def _window(project_id: int, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    return {"p": project_id, "since": since, "until": until,
            "lo": since - PARENT_SLACK, "hi": until + PARENT_SLACK}


def service_edges(store: TelemetryStore, project_id: int, since: dt.datetime,
                  until: dt.datetime) -> list[Edge]:
    """Calls between services (child spans whose parent is of another service) and calls out
    to external nodes, over ``[since, until)`` by the child's (the call's) start."""
    params = _window(project_id, since, until)
    seconds = (until - since).total_seconds()
    internal = store.rows(
        "SELECT p.service AS source, c.service AS target, count(*) AS requests, "
        "sum(CASE WHEN c.status_code = 2 OR (p.kind IN (3, 4) AND p.status_code = 2) "
        "THEN 1 ELSE 0 END) AS errors, "
        f"{_quantiles(store, 'c.duration_ns', '0.5, 0.95, 0.99')} AS q "
        "FROM (SELECT trace_id, span_id, parent_span_id, service, status_code, duration_ns "
        "      FROM spans WHERE project_id = {p:UInt64} AND start >= {since:DateTime64(6)} "
        "      AND start < {until:DateTime64(6)} AND parent_span_id != '') AS c "
        "INNER JOIN (SELECT trace_id, span_id, service, kind, status_code FROM spans "
        "      WHERE project_id = {p:UInt64} AND start >= {lo:DateTime64(6)} "
        "      AND start < {hi:DateTime64(6)}) AS p "
        "ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id "
        "WHERE p.service != c.service GROUP BY p.service, c.service", params)
    external = store.rows(
        "SELECT s.service AS source, "
        "CASE WHEN s.peer_service != '' THEN s.peer_service ELSE s.db_system END AS target, "
        "max(CASE WHEN s.peer_service != '' THEN 0 ELSE 1 END) AS is_db, "
        "count(*) AS requests, sum(CASE WHEN s.status_code = 2 THEN 1 ELSE 0 END) AS errors, "
        f"{_quantiles(store, 's.duration_ns', '0.5, 0.95, 0.99')} AS q "
        "FROM (SELECT trace_id, span_id, service, peer_service, db_system, status_code, "
        "      duration_ns FROM spans WHERE project_id = {p:UInt64} "
        "      AND start >= {since:DateTime64(6)} AND start < {until:DateTime64(6)} "
        "      AND kind IN (3, 4) AND (peer_service != '' OR db_system != '')) AS s "
        "LEFT JOIN (SELECT DISTINCT trace_id, parent_span_id, 1 AS has_child FROM spans "
        "      WHERE project_id = {p:UInt64} AND start >= {lo:DateTime64(6)} "
        "      AND start < {hi:DateTime64(6)} AND parent_span_id != '') AS k "
        "ON k.trace_id = s.trace_id AND k.parent_span_id = s.span_id "
        "WHERE coalesce(k.has_child, 0) = 0 GROUP BY source, target", params)
    edges = [Edge(r["source"], r["target"], _red(r, seconds)) for r in internal]
    known = {(e.source, e.target): e for e in edges}
    for r in external:
        if r["source"] == r["target"]:
            continue
        red = _red(r, seconds)
        edge = known.get((r["source"], r["target"]))
        if edge is not None:  # some calls reached an instrumented service, some did not
            _merge(edge.red, red)
            continue
        edge = Edge(r["source"], r["target"], red, external=True, db=bool(r["is_db"]))
        edges.append(edge)
        known[(edge.source, edge.target)] = edge
    return sorted(edges, key=lambda e: (e.source, e.target))


def _merge(into: Red, other: Red) -> None:
    """Counts add up; the percentiles of the larger part stand for both (an approximation)."""
    if other.requests > into.requests:
        into.p50_ms, into.p95_ms, into.p99_ms = other.p50_ms, other.p95_ms, other.p99_ms
    into.requests += other.requests
    into.errors += other.errors
    into.rate += other.rate


def service_map(store: TelemetryStore, project_id: int, since: dt.datetime,
                until: dt.datetime) -> tuple[list[ServiceNode], list[Edge]]:
    seconds = (until - since).total_seconds()
    nodes = {r["service"]: ServiceNode(r["service"], _red(r, seconds), int(r["spans"]))
             for r in service_red(store, project_id, since, until)}
    edges = service_edges(store, project_id, since, until)
    instrumented = set(nodes)
    for e in edges:
        if e.target in instrumented:
            e.external = False
            continue
        if e.external:
            node = nodes.setdefault(e.target, ServiceNode(
                e.target, Red(), external="database" if e.db else "peer"))
            _merge(node.red, Red(e.red.requests, e.red.errors, e.red.p50_ms, e.red.p95_ms,
                                 e.red.p99_ms, e.red.rate))
    return sorted(nodes.values(), key=lambda n: n.name), edges


def red_series(store: TelemetryStore, project_id: int, service: str, since: dt.datetime,
               until: dt.datetime, step: int) -> dict[str, list[Any]]:
    """Rate, errors and duration percentiles of a service's entry spans, per ``step`` seconds."""
    bucket = store.time_bucket("start", step)
    rows = store.rows(
        f"SELECT {bucket} AS t, count(*) AS requests, "
        "sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) AS errors, "
        f"{_quantiles(store, 'duration_ns')} AS q FROM spans "
        "WHERE project_id = {p:UInt64} AND service = {s:String} "
        f"AND start >= {{since:DateTime64(6)}} AND start < {{until:DateTime64(6)}} AND {ENTRY} "
        "GROUP BY t ORDER BY t",
        {"p": project_id, "s": service, "since": since, "until": until})
    by_t = {int(r["t"]): r for r in rows}
    epoch = dt.datetime(1970, 1, 1)
    first = int((since - epoch).total_seconds()) // step * step
    last = int((until - epoch).total_seconds())
    out: dict[str, list[Any]] = {k: [] for k in ("x", "rate", "error_rate_s", "error_pct",
                                                 "p50", "p95", "p99")}
    for t in range(first, last + 1, step):
        r = by_t.get(t)
        n, errors = (int(r["requests"]), int(r["errors"])) if r else (0, 0)
        out["x"].append(t)
        out["rate"].append(round(n / step, 6))
        out["error_rate_s"].append(round(errors / step, 6))
        out["error_pct"].append(round(100 * errors / n, 3) if n else None)
        for i, key in enumerate(("p50", "p95", "p99")):
            value = _ms(r["q"], i) if r else None
            out[key].append(round(value, 3) if value is not None else None)
    return out


def top_operations(store: TelemetryStore, project_id: int, service: str, since: dt.datetime,
                   until: dt.datetime, limit: int = 50) -> tuple[list[dict[str, Any]], bool]:
    """The service's operations by requests: its entry spans, else (a service that only
    calls out or works in the background) all of its spans. Second value: entry spans used."""
    seconds = (until - since).total_seconds()
    for where, entry in ((f"AND {ENTRY}", True), ("", False)):
        rows = store.rows(
            "SELECT name, count(*) AS requests, "
            "sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) AS errors, "
            f"{_quantiles(store, 'duration_ns')} AS q, sum(duration_ns) AS total_ns "
            "FROM spans WHERE project_id = {p:UInt64} AND service = {s:String} "
            f"AND start >= {{since:DateTime64(6)}} AND start < {{until:DateTime64(6)}} {where} "
            f"GROUP BY name ORDER BY requests DESC, name LIMIT {int(limit)}",
            {"p": project_id, "s": service, "since": since, "until": until})
        if rows:
            return [{"name": r["name"], "red": _red(r, seconds),
                     "total_ms": int(r["total_ns"] or 0) / 1e6} for r in rows], entry
    return [], True


# -- layout -------------------------------------------------------------------------------------

NODE_W, NODE_H = 196, 62
GAP_X, GAP_Y = 132, 30
MARGIN = 28


@dataclass
class Placed:
    name: str
    layer: int
    order: int
    x: float = 0.0
    y: float = 0.0


@dataclass
class Layout:
    nodes: dict[str, Placed]
    width: float
    height: float
    #: (source, target) → (SVG path, label x, label y, is a back edge)
    paths: dict[tuple[str, str], tuple[str, float, float, bool]] = field(default_factory=dict)


def layout(names: list[str], edges: list[tuple[str, str]]) -> Layout:
    """A layered (Sugiyama-style) drawing, left to right.

    1. Cycles are broken by a depth-first search: an edge to a node still on the stack is a
       back edge, laid out as if reversed (and drawn as a loop under the nodes).
    2. Layers: the longest path from a source (a node nobody calls), so callers sit left of
       the services they call.
    3. Order within layers: start from the name order, then four down-and-up sweeps of the
       barycentre heuristic (each node moves to the mean position of its neighbours in the
       previous layer), which removes most crossings for graphs of tens of nodes.
    4. Coordinates: layers are columns, each centred vertically.
    """
    names = sorted(set(names) | {n for e in edges for n in e})
    out_edges: dict[str, list[str]] = {n: [] for n in names}
    for s, t in edges:
        if s != t and t not in out_edges[s]:
            out_edges[s].append(t)
    incoming = {n: 0 for n in names}
    for s in names:
        for t in out_edges[s]:
            incoming[t] += 1
    # 1. back edges by DFS, sources first.
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for start in sorted(names, key=lambda n: (incoming[n] > 0, n)):
        if start in state:
            continue
        stack = [(start, iter(sorted(out_edges[start])))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(out_edges[child]))))
    dag: dict[str, list[str]] = {n: [] for n in names}
    for s in names:
        for t in out_edges[s]:
            a, b = (t, s) if (s, t) in back else (s, t)
            if b not in dag[a]:
                dag[a].append(b)
    # 2. longest-path layers (Kahn's order).
    indeg = {n: 0 for n in names}
    for a in names:
        for b in dag[a]:
            indeg[b] += 1
    layer = {n: 0 for n in names}
    ready = sorted(n for n in names if indeg[n] == 0)
    while ready:
        a = ready.pop(0)
        for b in dag[a]:
            layer[b] = max(layer[b], layer[a] + 1)
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    # A node with no edges at all joins the first column's end rather than widening the map.
    layers: dict[int, list[str]] = {}
    for n in names:
        layers.setdefault(layer[n], []).append(n)
    preds: dict[str, list[str]] = {n: [] for n in names}
    for a in names:
        for b in dag[a]:
            preds[b].append(a)
    # 3. barycentre sweeps.
    pos = {n: i for col in layers.values() for i, n in enumerate(col)}
    depth = max(layers) if layers else 0
    for _ in range(4):
        for neighbours, order in ((preds, range(1, depth + 1)), (dag, range(depth - 1, -1, -1))):
            for k in order:
                col = layers.get(k, [])

                def centre(n: str, nb: dict[str, list[str]] = neighbours) -> float:
                    around = nb[n]
                    return sum(pos[m] for m in around) / len(around) if around else pos[n]

                col.sort(key=lambda n: (centre(n), pos[n]))
                for i, n in enumerate(col):
                    pos[n] = i
    # 4. coordinates.
    tallest = max((len(c) for c in layers.values()), default=1)
    height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y + 40
    width = MARGIN * 2 + (depth + 1) * NODE_W + depth * GAP_X
    placed: dict[str, Placed] = {}
    for k, col in layers.items():
        col_h = len(col) * NODE_H + (len(col) - 1) * GAP_Y
        top = (height - 40 - col_h) / 2
        for i, n in enumerate(col):
            placed[n] = Placed(n, k, i, MARGIN + k * (NODE_W + GAP_X), top + i * (NODE_H + GAP_Y))
    result = Layout(placed, width, height)
    for s, t in edges:
        if s == t:
            continue
        result.paths[(s, t)] = _edge_path(placed[s], placed[t])
    return result


def _edge_path(a: Placed, b: Placed) -> tuple[str, float, float, bool]:
    if b.layer > a.layer:
        x0, y0 = a.x + NODE_W, a.y + NODE_H / 2
        x1, y1 = b.x - 3, b.y + NODE_H / 2
        dx = max((x1 - x0) / 2, 40)
        c0, c1 = (x0 + dx, y0), (x1 - dx, y1)
        back = False
    else:  # a back edge (a cycle): under the nodes, from the caller's bottom to the callee's
        x0, y0 = a.x + NODE_W * 0.6, a.y + NODE_H
        x1, y1 = b.x + NODE_W * 0.4, b.y + NODE_H + 3
        drop = 36 + 10 * abs(a.layer - b.layer)
        c0, c1 = (x0, max(y0, y1) + drop), (x1, max(y0, y1) + drop)
        back = True
    mx = (x0 + 3 * c0[0] + 3 * c1[0] + x1) / 8
    my = (y0 + 3 * c0[1] + 3 * c1[1] + y1) / 8
    d = (f"M{x0:.1f},{y0:.1f} C{c0[0]:.1f},{c0[1]:.1f} {c1[0]:.1f},{c1[1]:.1f} "
         f"{x1:.1f},{y1:.1f}")
    return d, mx, my, back


# -- formatting ---------------------------------------------------------------------------------


def fmt_rate(per_s: float) -> str:
    """Requests per second with two or three significant digits: '0.033/s', '12.4/s', '1.2k/s'."""
    if per_s <= 0:
        return "0/s"
    if per_s < 0.001:
        return "<0.001/s"
    if per_s < 1:
        return f"{per_s:.3f}".rstrip("0").rstrip(".") + "/s"
    if per_s < 100:
        return f"{per_s:.1f}/s".replace(".0/s", "/s")
    if per_s < 1000:
        return f"{per_s:.0f}/s"
    return f"{per_s / 1000:.1f}k/s"


def fmt_pct(ratio: float) -> str:
    if ratio <= 0:
        return "0%"
    if ratio < 0.001:
        return "<0.1%"
    return f"{ratio * 100:.1f}%".replace(".0%", "%")


def health(ratio: float) -> str:
    return "bad" if ratio >= 0.05 else "warn" if ratio >= 0.01 else "ok"


templating.env.filters.update(req_rate=fmt_rate, err_pct=fmt_pct, red_health=health)


def _edge_width(rate: float, peak: float) -> float:
    if peak <= 0:
        return 1.5
    return round(1.3 + 3.2 * math.log1p(rate) / math.log1p(peak), 2)


def _period(period: str) -> tuple[str, dt.datetime, dt.datetime, int]:
    period = period if period in PERIODS else DEFAULT_PERIOD
    seconds, step = PERIODS[period]
    until = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return period, until - dt.timedelta(seconds=seconds), until, step


# -- pages --------------------------------------------------------------------------------------


@router.get("/o/{org_slug}/p/{project_slug}/services")
def services_page(
    request: Request,
    org_slug: str,
    project_slug: str,
    period: str = DEFAULT_PERIOD,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = project_for(db, caller, org_slug, project_slug)
    base = base_path(org, project)
    period, since, until, _ = _period(period)
    store = store_of(request)
    nodes, edges = service_map(store, project.id, since, until)
    drawing = layout([n.name for n in nodes], [(e.source, e.target) for e in edges])
    peak = max((e.red.rate for e in edges), default=0.0)
    first_run = not nodes and not has_spans(store, project.id)
    return templating.render(request, "traces/services.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": ASSETS, "asset_version": __version__, "tab": "services",
        "service_color": project_palette(store, project.id, [n.name for n in nodes]),
        "nodes": nodes, "node_by_name": {n.name: n for n in nodes}, "edges": edges,
        "drawing": drawing, "edge_width": lambda e: _edge_width(e.red.rate, peak),
        "node_w": NODE_W, "node_h": NODE_H, "period": period, "periods": list(PERIODS),
        "quote": quote, "first_run": first_run,
        "setup": setup_info(request, db, project) if first_run else None,
        "services_with_spans": [n for n in nodes if not n.external],
    }, db=db)


@router.get("/o/{org_slug}/p/{project_slug}/services/{service}")
def service_page(
    request: Request,
    org_slug: str,
    project_slug: str,
    service: str,
    period: str = DEFAULT_PERIOD,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = project_for(db, caller, org_slug, project_slug)
    base = base_path(org, project)
    period, since, until, step = _period(period)
    store = store_of(request)
    seconds = (until - since).total_seconds()
    rows = [r for r in service_red(store, project.id, since, until) if r["service"] == service]
    edges = service_edges(store, project.id, since, until)
    callers = [e for e in edges if e.target == service]
    callees = [e for e in edges if e.source == service]
    if not rows and not callers:
        known = store.rows("SELECT 1 AS x FROM spans WHERE project_id = {p:UInt64} "
                           "AND service = {s:String} LIMIT 1", {"p": project.id, "s": service})
        if not known:
            raise HTTPException(404, f"No spans of a service named “{service}” are stored in "
                                     "this project.")
    red = _red(rows[0], seconds) if rows else Red()
    operations, entry = top_operations(store, project.id, service, since, until)
    return templating.render(request, "traces/service.html", {
        "caller": caller, "org": org, "project": project, "role": role, "base": base,
        "assets": ASSETS, "asset_version": __version__, "tab": "services",
        "service": service, "red": red, "spans": int(rows[0]["spans"]) if rows else 0,
        "series": red_series(store, project.id, service, since, until, step),
        "step": step, "operations": operations, "entry": entry,
        "callers": callers, "callees": callees, "period": period, "periods": list(PERIODS),
        "service_color": project_palette(store, project.id, [service]), "quote": quote,
    }, db=db)


# -- JSON API -----------------------------------------------------------------------------------


class RedOut(BaseModel):
    requests: int
    rate_per_s: float
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class NodeOut(RedOut):
    service: str
    external: str


class EdgeOut(RedOut):
    source: str
    target: str
    external: bool


class ServiceMapOut(BaseModel):
    since: dt.datetime
    until: dt.datetime
    services: list[NodeOut]
    edges: list[EdgeOut]


def _red_out(red: Red) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return round(v, 3) if v is not None else None

    return {"requests": red.requests, "rate_per_s": round(red.rate, 6), "errors": red.errors,
            "error_rate": round(red.error_rate, 6), "p50_ms": r(red.p50_ms),
            "p95_ms": r(red.p95_ms), "p99_ms": r(red.p99_ms)}


@api.get("/projects/{project_id}/service-map", response_model=ServiceMapOut)
async def service_map_api(
    project_id: int,
    request: Request,
    minutes: int = Query(60, ge=1, le=60 * 24 * 31),
    caller: Caller = Depends(api_caller),
    db: Session = Depends(db_session),
) -> ServiceMapOut:
    """Services (with the RED figures of their entry spans) and the calls between them (rate,
    errors, latency of the called side) over the last `minutes`."""
    project_access(db, caller, project_id, Role.viewer)
    until = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    since = until - dt.timedelta(minutes=minutes)
    nodes, edges = await run_in_threadpool(service_map, store_of(request), project_id, since,
                                           until)
    return ServiceMapOut(
        since=since, until=until,
        services=[NodeOut(service=n.name, external=n.external, **_red_out(n.red))
                  for n in nodes],
        edges=[EdgeOut(source=e.source, target=e.target, external=e.external,
                       **_red_out(e.red)) for e in edges])


def install(app: FastAPI) -> None:
    app.include_router(api)
    app.include_router(router)
