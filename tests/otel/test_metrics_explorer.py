"""The metrics explorer and dashboards: exact figures on hand-built points (rates across counter
resets, percentiles from known buckets, exponential histograms, gauges, group-by, filters), the
real OpenTelemetry SDK with cumulative and delta exporters, the JSON API, and dashboards CRUD
with roles and tenancy."""

from __future__ import annotations

import datetime as dt
import math
import re
import time

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetrics,
)
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.models import Role
from spyglass.otel import metrics_queries as mq
from spyglass.otel.dashboards import Dashboard
from spyglass.otel.resources import RESOURCES
from spyglass.otel.schema import METRIC_POINTS

_now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
T0 = (_now - dt.timedelta(minutes=10)).replace(second=0, microsecond=0)
OLD = T0 - dt.timedelta(hours=1)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def point(pid: int, metric: str, k: float, **kw) -> dict:  # type: ignore[no-untyped-def]
    """A point at T0 + 30 s + k minutes (k = -1: the baseline before the range)."""
    row = dict(project_id=pid, metric=metric, type="sum", unit="1", description="", temporality=2,
               monotonic=True, service="api", series_id=1,
               timestamp=T0 + dt.timedelta(seconds=30 + 60 * k), start_time=OLD, value=0.0,
               count=0, sum=math.nan, min=math.nan, max=math.nan, bounds=[], bucket_counts=[],
               scale=0, zero_count=0, zero_threshold=0.0, positive_offset=0, positive_counts=[],
               negative_offset=0, negative_counts=[], quantiles=[], quantile_values=[], flags=0,
               exemplars="", scope_name="test", attributes={}, resource_id=0)
    row.update(kw)
    return row


def hist(pid: int, k: float, counts: list[int], **kw) -> dict:  # type: ignore[no-untyped-def]
    return point(pid, "latency", k, type="histogram", bounds=["10", "100", "1000"],
                 bucket_counts=[str(c) for c in counts], count=sum(counts), value=math.nan,
                 **kw)


@pytest.fixture
def known(client, tenant_factory):  # type: ignore[no-untyped-def]
    t = tenant_factory("metrics")
    pid = t.project_id
    rt = client.app.state.runtime
    rows = []
    # Counter A (route /a): +60 a minute, reset (drop to 30) in minute 2.
    for k, v in enumerate([1000, 1060, 1120, 30, 90, 150, 210], start=-1):
        rows.append(point(pid, "requests", k, value=float(v), series_id=1,
                          attributes={"route": "/a"}))
    # Counter B (route /b): +30 a minute, restarted (new start_time) in minute 2 at 5.
    restart = T0 + dt.timedelta(minutes=2)
    for k, v in enumerate([10, 40, 70, 5, 20, 35, 50], start=-1):
        rows.append(point(pid, "requests", k, value=float(v), series_id=2, resource_id=5,
                          start_time=restart if k >= 2 else OLD, attributes={"route": "/b"}))
    # A delta counter.
    for k, v in enumerate([3, 4, 5]):
        rows.append(point(pid, "jobs", k, value=float(v), temporality=1, series_id=3))
    # Gauges: host a has two points in minute 0, host b one.
    rows += [point(pid, "cpu", 0, type="gauge", temporality=0, monotonic=False, value=1.0,
                   series_id=4, attributes={"host": "a"}),
             point(pid, "cpu", 0.4, type="gauge", temporality=0, monotonic=False, value=3.0,
                   series_id=4, attributes={"host": "a"}),
             point(pid, "cpu", 0.2, type="gauge", temporality=0, monotonic=False, value=10.0,
                   series_id=5, attributes={"host": "b"})]
    # A cumulative histogram (differenced, with a reset in minute 2) and a delta one.
    rows += [hist(pid, -1, [1, 1, 1, 0], series_id=6), hist(pid, 0, [11, 1, 1, 0], series_id=6),
             hist(pid, 1, [11, 11, 1, 0], series_id=6), hist(pid, 2, [0, 0, 2, 2], series_id=6),
             hist(pid, 0, [0, 10, 0, 0], series_id=7, temporality=1)]
    # Exponential histograms of two scales (scale 1 downscales exactly to scale 0).
    exp = dict(type="exponential_histogram", temporality=1, value=math.nan)
    rows += [point(pid, "size", 0, scale=1, positive_offset=0, positive_counts=["2", "2"],
                   count=4, series_id=8, **exp),
             point(pid, "size", 0, scale=0, positive_offset=1, positive_counts=["4"], count=4,
                   series_id=9, **exp)]
    rt.writer.write_sync(METRIC_POINTS, rows)
    rt.writer.write_sync(RESOURCES, [{"project_id": pid, "resource_id": 5, "timestamp": _now,
                                      "service": "api", "attributes": {"host.name": "web-1"}}])
    return client, t, pid, rt.store


def run(store, pid, metric, agg, filters=(), group_by=(), minutes=6):  # type: ignore[no-untyped-def]
    q = mq.MetricQuery.from_json({"metric": metric, "aggregation": agg, "filters": list(filters),
                                  "group_by": list(group_by)})
    return mq.run(store, pid, q, T0, T0 + dt.timedelta(minutes=minutes), step=60)


def values(result, label=None):  # type: ignore[no-untyped-def]
    series = result.series if label is None else [s for s in result.series if s.label == label]
    assert len(series) == 1, [s.label for s in result.series]
    return [None if v is None else round(v, 4) for v in series[0].values]


def test_rate_across_counter_resets_and_group_by(known) -> None:  # type: ignore[no-untyped-def]
    _, _, pid, store = known
    total = run(store, pid, "requests", "increase")
    assert values(total) == [90, 90, 35, 75, 75, 75]
    assert values(run(store, pid, "requests", "rate")) == [
        round(v / 60, 4) for v in (90, 90, 35, 75, 75, 75)]
    by_route = run(store, pid, "requests", "increase", group_by=["route"])
    assert values(by_route, "route=/a") == [60, 60, 30, 60, 60, 60]  # the drop is a reset
    assert values(by_route, "route=/b") == [30, 30, 5, 15, 15, 15]  # so is a new start_time
    assert run(store, pid, "requests", "auto").aggregation == "rate"
    # filters: attributes, negation, resource attributes
    assert values(run(store, pid, "requests", "increase", ["route=/a"]))[0] == 60
    assert values(run(store, pid, "requests", "increase", ["route!=/a"]))[0] == 30
    assert values(run(store, pid, "requests", "increase", ["host.name=web-1"]))[2] == 5
    assert values(run(store, pid, "requests", "increase", ["service=api"]))[0] == 90
    assert run(store, pid, "requests", "increase", ["route=/zzz"]).series == []
    # a delta counter: each point is its own increase
    assert values(run(store, pid, "jobs", "increase")) == [3, 4, 5, None, None, None]
    assert values(run(store, pid, "jobs", "rate"))[:3] == [0.05, round(4 / 60, 4),
                                                           round(5 / 60, 4)]


def test_gauge_aggregations(known) -> None:  # type: ignore[no-untyped-def]
    _, _, pid, store = known
    first = {agg: values(run(store, pid, "cpu", agg))[0]
             for agg in ("sum", "avg", "min", "max", "last")}
    assert first == {"sum": 13.0, "avg": round(14 / 3, 4), "min": 1.0, "max": 10.0,
                     "last": 6.5}
    by_host = run(store, pid, "cpu", "avg", group_by=["host"])
    assert values(by_host, "host=a")[0] == 2.0 and values(by_host, "host=b")[0] == 10.0
    assert run(store, pid, "cpu", "rate").aggregation == "sum"  # not offered for gauges


def test_percentiles_from_known_buckets(known) -> None:  # type: ignore[no-untyped-def]
    _, _, pid, store = known
    # minute 0 merges A's difference [10,0,0,0] with B's delta [0,10,0,0]
    assert values(run(store, pid, "latency", "p50"))[:3] == [10.0, 55.0, 1000.0]
    assert values(run(store, pid, "latency", "p75"))[0] == 55.0
    p99 = values(run(store, pid, "latency", "p99"))
    assert p99[1] == 99.1  # 10 + 90 * 9.9 / 10
    assert p99[2] == 1000.0  # the rank falls in the overflow bucket: the highest finite bound
    only_a = values(run(store, pid, "latency", "p50", group_by=["route"]))
    assert only_a[:3] == [10.0, 55.0, 1000.0]
    assert values(run(store, pid, "latency", "rate"))[0] == round(20 / 60, 4)
    assert mq.quantile({10.0: 5, 100.0: 4, math.inf: 1}, 0.5) == 10.0
    assert mq.quantile({}, 0.5) is None
    # exponential: (1, 2] holds 4 (downscaled from scale 1), (2, 4] holds 4
    size = {agg: values(run(store, pid, "size", agg))[0] for agg in ("p50", "p75")}
    assert size == {"p50": 2.0, "p75": 3.0}
    assert values(run(store, pid, "size", "p99"))[0] == round(2 + 2 * 3.92 / 4, 4)


def test_metrics_api(known, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    client, t, pid, _ = known
    r = client.get(f"/api/v1/projects/{pid}/metrics", headers=t.auth)
    assert r.status_code == 200
    catalogue = {m["name"]: m for m in r.json()["metrics"]}
    assert catalogue["requests"]["kind"] == "counter · cumulative"
    assert catalogue["requests"]["series"] == 2 and catalogue["latency"]["aggregations"][0] == "p50"
    assert catalogue["size"]["type"] == "exponential_histogram"
    since, until = T0.isoformat() + "Z", (T0 + dt.timedelta(minutes=6)).isoformat() + "Z"
    r = client.get(f"/api/v1/projects/{pid}/metrics/query", headers=t.auth, params={
        "metric": "requests", "aggregation": "increase", "group_by": "route",
        "since": since, "until": until, "step": 60})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["step"] == 60 and len(body["timestamps"]) == 6
    assert {s["label"]: s["values"][2] for s in body["series"]} == {"route=/a": 30.0,
                                                                     "route=/b": 5.0}
    r = client.post(f"/api/v1/projects/{pid}/metrics/query", headers=t.auth, json={
        "metric": "latency", "aggregation": "p50", "since": since, "until": until, "step": 60})
    assert r.json()["series"][0]["values"][:2] == [10.0, 55.0]
    assert client.post(f"/api/v1/projects/{pid}/metrics/query", headers=t.auth, json={
        "metric": "nope"}).status_code == 404
    assert client.post(f"/api/v1/projects/{pid}/metrics/query", headers=t.auth, json={
        "metric": "requests", "filters": ["no-operator"]}).status_code == 422
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/api/v1/projects/{project_id}/metrics/query" in paths
    other = tenant_factory("outsider")
    assert client.get(f"/api/v1/projects/{pid}/metrics", headers=other.auth).status_code == 404


def _login(client, email: str) -> str:  # type: ignore[no-untyped-def]
    client.cookies.clear()
    assert client.post("/login", data={"email": email, "password": "correct horse battery"},
                       follow_redirects=False).status_code == 303
    return CSRF.search(client.get("/settings/tokens").text).group(1)


def test_explorer_page_and_dashboards_with_roles(known, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    client, t, pid, _ = known
    db = client.app.state.runtime.db
    with db.session() as s:
        accounts.create_user(s, "viewer@example.com", "correct horse battery")
        org = accounts.get_or_create_org(s, t.org)
        accounts.set_member(s, org, "viewer@example.com", Role.viewer)
        s.commit()
    stranger = tenant_factory("stranger")
    base = f"/o/{t.org}/p/metrics-app"
    here = base + "/metrics/dashboards"

    csrf = _login(client, t.email)
    page = client.get(f"{base}/metrics", params={"metric": "requests", "group_by": "route",
                                                 "agg": "rate", "period": "1h"})
    assert page.status_code == 200
    assert "route=/a" in page.text and 'data-metric-chart' in page.text
    assert 'id="save-panel"' in page.text and "counter · cumulative" in page.text
    assert client.get(f"{base}/metrics").status_code == 200
    # save the chart to a new dashboard, then another panel to it
    query = '{"metric": "requests", "aggregation": "auto", "filters": [], "group_by": ["route"]}'
    r = client.post(f"{here}/add-panel", data={
        "csrf_token": csrf, "query": query, "aggregation": "rate", "dashboard": "new",
        "new_name": "Checkout", "title": "Requests by route"}, follow_redirects=False)
    assert r.status_code == 303
    dash_url = r.headers["location"]
    did = int(dash_url.rsplit("/", 1)[1])
    r = client.post(f"{here}/add-panel", data={
        "csrf_token": csrf, "dashboard": str(did), "title": "Latency p95",
        "query": '{"metric": "latency", "aggregation": "p95"}'}, follow_redirects=False)
    assert r.headers["location"] == dash_url
    view = client.get(dash_url, params={"period": "1h"})
    assert view.status_code == 200
    assert view.text.index("Requests by route") < view.text.index("Latency p95")
    assert "route=/a" in view.text and view.text.count("data-metric-chart") == 2
    with db.session() as s:
        d = s.get(Dashboard, did)
        panels = [(p.id, p.title, p.query["aggregation"]) for p in d.panels]
    assert [p[1:] for p in panels] == [("Requests by route", "rate"), ("Latency p95", "p95")]
    # move, rename, remove panels; rename the dashboard
    client.post(f"{here}/{did}/panels/{panels[1][0]}/up", data={"csrf_token": csrf})
    view = client.get(dash_url).text
    assert view.index("Latency p95") < view.index("Requests by route")
    client.post(f"{here}/{did}/panels/{panels[0][0]}/rename",
                data={"csrf_token": csrf, "title": "Traffic"})
    client.post(f"{here}/{did}/edit", data={"csrf_token": csrf, "name": "Shop",
                                            "description": "the shop", "period": "24h"})
    view = client.get(dash_url).text
    assert "Traffic" in view and "Shop" in view and "Last 24h" in view
    client.post(f"{here}/{did}/panels/{panels[1][0]}/delete", data={"csrf_token": csrf})
    assert "Latency p95" not in client.get(dash_url).text
    r = client.post(here, data={"csrf_token": csrf, "name": "Spare"}, follow_redirects=False)
    spare = r.headers["location"]
    listing = client.get(here).text
    assert "Shop" in listing and "Spare" in listing

    # a viewer reads but changes nothing
    csrf = _login(client, "viewer@example.com")
    assert client.get(dash_url).status_code == 200
    assert 'id="edit-dashboard"' not in client.get(dash_url).text
    assert 'id="save-panel"' not in client.get(f"{base}/metrics?metric=requests").text
    assert client.post(here, data={"csrf_token": csrf, "name": "X"}).status_code == 403
    assert client.post(f"{here}/{did}/delete", data={"csrf_token": csrf}).status_code == 403
    assert client.post(f"{here}/add-panel", data={"csrf_token": csrf, "query": query,
                                                  "dashboard": str(did)}).status_code == 403

    # another organization's member: not found, whatever the method
    csrf = _login(client, stranger.email)
    assert client.get(dash_url).status_code == 404
    assert client.post(f"{here}/{did}/delete", data={"csrf_token": csrf}).status_code == 404
    # nor is a dashboard reachable through another project's address
    other_base = f"/o/{stranger.org}/p/stranger-app/metrics/dashboards/{did}"
    assert client.get(other_base).status_code == 404

    csrf = _login(client, t.email)
    assert client.post(f"{spare}/delete", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    assert client.get(spare).status_code == 404


# -- the real OpenTelemetry SDK ----------------------------------------------------------------

DELTA = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
         ObservableCounter: AggregationTemporality.DELTA,
         UpDownCounter: AggregationTemporality.CUMULATIVE}


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_sdk_metrics_of_every_kind(live, tenant_maker, temporality) -> None:  # type: ignore[no-untyped-def]
    reader = PeriodicExportingMetricReader(
        HttpMetrics(endpoint=live.url + "/v1/metrics", headers=live.headers(),
                    preferred_temporality=DELTA if temporality == "delta" else None),
        export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "shop"}),
                             metric_readers=[reader])
    meter = provider.get_meter("shop.metrics")
    orders = meter.create_counter("orders", unit="1", description="orders placed")
    in_flight = meter.create_up_down_counter("in_flight")
    latency = meter.create_histogram("checkout.duration", unit="ms")

    def temperature(options: CallbackOptions) -> list[Observation]:
        return [Observation(0.75, {"host": "a"}), Observation(0.25, {"host": "b"})]

    meter.create_observable_gauge("cpu.utilization", [temperature])
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for v in range(1, 101):
        latency.record(v, {"route": "/checkout"})
    orders.add(3, {"status": "ok"})
    orders.add(1, {"status": "failed"})
    in_flight.add(5)
    in_flight.add(-2)
    assert provider.force_flush()
    time.sleep(0.05)
    orders.add(4, {"status": "ok"})
    in_flight.add(4)
    assert provider.force_flush()
    provider.shutdown()

    user = tenant_maker(live.runtime.db, f"sdk-{temporality}")
    with live.runtime.db.session() as s:  # the API user joins the live project's organization
        from spyglass.kernel.meta.models import Project

        org = s.get(Project, live.tenant.project_id).organization
        accounts.set_member(s, org, user.email, Role.viewer)
        s.commit()
    import httpx

    def query(**params):  # type: ignore[no-untyped-def]
        r = httpx.get(f"{live.url}/api/v1/projects/{live.tenant.project_id}/metrics/query",
                      headers=user.auth, params={
                          "since": (started - dt.timedelta(minutes=5)).isoformat(),
                          "until": (started + dt.timedelta(minutes=5)).isoformat(),
                          **params})
        assert r.status_code == 200, r.text
        return r.json()

    def present(series):  # type: ignore[no-untyped-def]
        return [v for v in series["values"] if v is not None]

    body = query(metric="orders", aggregation="increase", group_by="status")
    assert {s["label"]: sum(present(s)) for s in body["series"]} == {"status=ok": 7.0,
                                                                     "status=failed": 1.0}
    assert body["type"] == "sum"
    assert present(query(metric="in_flight", aggregation="sum")["series"][0])[-1] == 7.0
    p50 = query(metric="checkout.duration", aggregation="p50")["series"][0]
    assert present(p50)[0] == 50.0  # 25 + 25 * (50 - 25) / 25 from the SDK's default bounds
    p99 = query(metric="checkout.duration", aggregation="p99")["series"][0]
    assert present(p99)[0] == 99.0  # 75 + 25 * (99 - 75) / 25
    cpu = query(metric="cpu.utilization", aggregation="max", group_by="host")
    assert {s["label"]: max(present(s)) for s in cpu["series"]} == {"host=a": 0.75,
                                                                    "host=b": 0.25}
    catalogue = httpx.get(f"{live.url}/api/v1/projects/{live.tenant.project_id}/metrics",
                          headers=user.auth).json()["metrics"]
    kinds = {m["name"]: m["kind"] for m in catalogue}
    assert kinds["orders"] == f"counter · {temporality}"
    assert kinds["in_flight"] == "up-down counter · cumulative"
    assert kinds["cpu.utilization"] == "gauge"
