"""The service map: edges from parent/child spans of different services and from client spans
to external peers, RED figures of services and edges, the layered layout, the pages and the
JSON API; and the map of a real OpenTelemetry SDK trace across two services."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
from typing import Any

import pytest
from test_traces_pages import sdk_two_services, send_handmade, web_login

from spyglass.otel import servicemap as sm
from spyglass.otel.schema import SPANS

PASSWORD = "correct horse battery"
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def row(pid: int, trace: str, span_id: str, parent: str, service: str, name: str, ms: float, *,
        kind: int = 2, error: bool = False, minutes_ago: float = 10, peer: str = "",
        db: str = "") -> dict[str, Any]:
    return {
        "project_id": pid, "trace_id": trace, "span_id": span_id, "parent_span_id": parent,
        "trace_state": "", "service": service, "name": name, "kind": kind,
        "start": NOW - dt.timedelta(minutes=minutes_ago), "duration_ns": int(ms * 1e6),
        "status_code": 2 if error else 0, "status_message": "", "http_method": "",
        "http_route": "", "http_status_code": 0, "db_system": db, "peer_service": peer,
        "scope_name": "", "scope_version": "", "attributes": {}, "resource_id": 0,
        "events": "", "links": "", "source": "otlp",
    }


def shop(pid: int, minutes_ago: float = 10) -> list[dict[str, Any]]:
    """frontend → api (10, 20, 30, 40 ms; the last fails) → postgresql (no spans of its own),
    and frontend → stripe (a failed call to an uninstrumented peer)."""
    rows = []
    for i, ms in enumerate((10, 20, 30, 40), start=1):
        t = f"{i:032x}"
        rows += [
            row(pid, t, f"{i:015x}a", "", "frontend", "GET /shop", 100, minutes_ago=minutes_ago),
            row(pid, t, f"{i:015x}b", f"{i:015x}a", "frontend", "GET api", ms + 2, kind=3,
                minutes_ago=minutes_ago),
            row(pid, t, f"{i:015x}c", f"{i:015x}b", "api", "GET /items", ms, error=i == 4,
                minutes_ago=minutes_ago),
            row(pid, t, f"{i:015x}d", f"{i:015x}c", "api", "SELECT items", 5, kind=3,
                db="postgresql", minutes_ago=minutes_ago),
        ]
    rows += [
        row(pid, "5" * 32, "5" * 16, "", "frontend", "POST /pay", 300, minutes_ago=minutes_ago),
        row(pid, "5" * 32, "6" * 16, "5" * 16, "frontend", "POST stripe", 250, kind=3,
            error=True, peer="stripe", minutes_ago=minutes_ago),
    ]
    return rows


@pytest.fixture
def known(client, tenant_factory):  # type: ignore[no-untyped-def]
    t = tenant_factory("map")
    rt = client.app.state.runtime
    rt.writer.write_sync(SPANS, shop(t.project_id) + [
        # Two hours ago: outside the last hour.
        row(t.project_id, "7" * 32, "7" * 16, "", "frontend", "GET /old", 1, minutes_ago=120),
        row(t.project_id, "7" * 32, "8" * 16, "7" * 16, "legacy", "GET /old", 1,
            minutes_ago=120),
    ])
    other = tenant_factory("map-other")
    rt.writer.write_sync(SPANS, shop(other.project_id))
    r = client.post("/login", data={"email": t.email, "password": t.password},
                    follow_redirects=False)
    assert r.status_code == 303
    return client, rt.store, t


def by_pair(edges: list[sm.Edge]) -> dict[tuple[str, str], sm.Edge]:
    return {(e.source, e.target): e for e in edges}


def test_edges_and_red_figures(known):
    _, store, t = known
    since, until = NOW - dt.timedelta(hours=1), NOW + dt.timedelta(seconds=1)
    nodes, edges = sm.service_map(store, t.project_id, since, until)
    seconds = (until - since).total_seconds()
    assert {n.name: n.external for n in nodes} == {
        "frontend": "", "api": "", "postgresql": "database", "stripe": "peer"}
    pairs = by_pair(edges)
    assert set(pairs) == {("frontend", "api"), ("api", "postgresql"), ("frontend", "stripe")}
    call = pairs[("frontend", "api")]
    assert (call.red.requests, call.red.errors, call.external) == (4, 1, False)
    assert call.red.rate == pytest.approx(4 / seconds)
    assert 20 <= call.red.p50_ms <= 30 and 30 <= call.red.p95_ms <= 40   # the callee's view
    db = pairs[("api", "postgresql")]
    assert (db.red.requests, db.red.errors, db.external, db.db) == (4, 0, True, True)
    assert db.red.p50_ms == pytest.approx(5)
    pay = pairs[("frontend", "stripe")]
    assert (pay.red.requests, pay.red.errors, pay.external) == (1, 1, True)
    node = {n.name: n for n in nodes}
    api = node["api"].red
    assert (api.requests, api.errors, api.error_rate) == (4, 1, 0.25)
    assert 20 <= api.p50_ms <= 30 and 30 <= api.p99_ms <= 40
    assert (node["frontend"].red.requests, node["frontend"].red.errors) == (5, 0)
    assert node["stripe"].red.requests == 1 and node["stripe"].red.errors == 1


def test_service_page_series_and_operations(known):
    client, store, t = known
    series = sm.red_series(store, t.project_id, "api", NOW - dt.timedelta(hours=1),
                           NOW + dt.timedelta(seconds=1), 60)
    assert round(sum(series["rate"]) * 60) == 4 and round(sum(series["error_rate_s"]) * 60) == 1
    assert [p for p in series["error_pct"] if p is not None] == [25.0]
    ops, entry = sm.top_operations(store, t.project_id, "api", NOW - dt.timedelta(hours=1),
                                   NOW + dt.timedelta(seconds=1))
    assert entry and [(o["name"], o["red"].requests, o["red"].errors) for o in ops] == [
        ("GET /items", 4, 1)]
    base = "/o/org-map/p/map-app"
    html = client.get(base + "/services/api").text
    assert 'data-operation="GET /items"' in html and 'id="red-series"' in html
    callers = html[html.index('id="callers"'):html.index('id="callees"')]
    callees = html[html.index('id="callees"'):]
    assert "frontend" in callers and "postgresql" in callees
    assert 'data-metric="error-rate">25%' in html
    # An external node has a page too (who calls it); an unknown service is a 404.
    assert "api" in client.get(base + "/services/postgresql").text
    assert client.get(base + "/services/nobody").status_code == 404


def test_map_page_and_api(known):
    client, _, t = known
    html = client.get("/o/org-map/p/map-app/services").text
    assert html.count('class="edge ') == 3
    assert re.search(r'class="edge bad" data-source="frontend" data-target="api"', html)
    assert re.search(r'class="node external[^"]*" data-node="stripe"', html)
    assert 'data-node="legacy"' not in html      # only in the older window
    assert 'data-node="legacy"' in client.get("/o/org-map/p/map-app/services?period=24h").text
    r = client.get(f"/api/v1/projects/{t.project_id}/service-map", headers=t.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    edge = {(e["source"], e["target"]): e for e in body["edges"]}[("frontend", "api")]
    assert (edge["requests"], edge["errors"], edge["error_rate"]) == (4, 1, 0.25)
    assert {s["service"] for s in body["services"]} == {"frontend", "api", "postgresql",
                                                        "stripe"}
    other = client.get("/api/v1/projects/999/service-map", headers=t.auth)
    assert other.status_code == 404


def test_layout_of_thirty_services():
    rng = random.Random(4)
    tiers = [[f"svc-{t}-{i}" for i in range(n)] for t, n in enumerate((2, 5, 8, 9, 6))]
    names = [n for tier in tiers for n in tier]
    edges = set()
    for upper, lower in itertools.pairwise(tiers):
        for callee in lower:
            edges.add((rng.choice(upper), callee))
        for caller in upper:
            edges.add((caller, rng.choice(lower)))
    cycle = {("svc-1-0", "svc-2-0"), ("svc-2-0", "svc-3-0"), ("svc-3-0", "svc-4-0"),
             ("svc-4-0", "svc-1-0")}
    edges |= cycle | {("svc-0-0", "svc-3-0")}   # a cycle, and a long edge
    drawing = sm.layout(names, sorted(edges))
    assert set(drawing.nodes) == set(names) and set(drawing.paths) == edges
    boxes = [(p.x, p.y) for p in drawing.nodes.values()]
    for i, (x, y) in enumerate(boxes):   # no two nodes overlap
        for x2, y2 in boxes[i + 1:]:
            assert abs(x - x2) >= sm.NODE_W or abs(y - y2) >= sm.NODE_H
        assert 0 <= x <= drawing.width - sm.NODE_W and 0 <= y <= drawing.height - sm.NODE_H
    back = [pair for pair, path in drawing.paths.items() if path[3]]
    assert len(back) == 1 and back[0] in cycle
    for s, t in edges - set(back):     # callers left of callees
        assert drawing.nodes[s].layer < drawing.nodes[t].layer
    assert drawing.width < 2000 and drawing.height < 1200


def test_map_of_real_sdk_and_split_traces(live):
    """Spans of one trace from two processes and from several requests pair up at query time."""
    send_handmade(live)
    sdk_two_services(live)
    client = web_login(live)
    html = client.get(f"/o/{live.org_slug}/p/{live.project_slug}/services").text
    for source, target in (("frontend", "backend"), ("backend", "postgresql"),
                           ("gateway", "orders"), ("orders", "postgresql"),
                           ("web", "payments")):
        assert re.search(rf'data-source="{source}" data-target="{target}"', html), (source,
                                                                                    target)
    # The frontend's client span names peer.service=backend and has its child: no extra
    # external node; the skewed payments call failed on the callee's side.
    assert html.count('data-node="backend"') == 1
    assert re.search(r'class="edge bad" data-source="web" data-target="payments"', html)
    client.close()
