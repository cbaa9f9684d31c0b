"""Performance: figures on known data (both sources), the pages with real sentry-sdk
transactions, the JSON API, roles and tenancy, and both pages in headless Chromium."""

from __future__ import annotations

import datetime as dt
import re
import time

import httpx
import pytest
import sentry_sdk
from chromium_page import SCREENSHOTS, chromium_page, needs_chromium, sign_in
from sdk_capture import sdk

from spyglass.errors import performance_queries as pq
from spyglass.errors.schema import TRANSACTIONS
from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.models import Project, Role
from spyglass.otel.resources import RESOURCES
from spyglass.otel.schema import SPANS

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def tx(pid: int, name: str, ms: float, status: str = "ok", user: str = "", minutes_ago: float = 10,
       env: str = "prod", release: str = "api@1", op: str = "http.server", trace: str = "a"
       ) -> dict:
    return {
        "project_id": pid, "timestamp": NOW - dt.timedelta(minutes=minutes_ago),
        "trace_id": trace * 32 if len(trace) == 1 else trace, "span_id": f"{int(ms * 7):016x}",
        "name": name, "op": op, "duration_ms": float(ms), "status": status,
        "http_status_code": 0, "user_key": user, "release": release, "environment": env,
        "platform": "python", "service": "web-1", "source": "sentry", "measurements": {},
    }


def span(pid: int, name: str, ms: float, *, kind: int = 2, error: bool = False, user: str = "",
         source: str = "otlp", resource_id: int = 77, minutes_ago: float = 5,
         span_id: str = "", parent: str = "", trace: str = "b" * 32, offset_ms: float = 0) -> dict:
    start = NOW - dt.timedelta(minutes=minutes_ago) + dt.timedelta(milliseconds=offset_ms)
    return {
        "project_id": pid, "trace_id": trace, "span_id": span_id or f"{int(ms * 13) + kind:016x}",
        "parent_span_id": parent, "trace_state": "", "service": "checkout", "name": name,
        "kind": kind, "start": start, "duration_ns": int(ms * 1e6),
        "status_code": 2 if error else 0, "status_message": "", "http_method": "GET",
        "http_route": "", "http_status_code": 500 if error else 200, "db_system": "",
        "peer_service": "", "scope_name": "", "scope_version": "",
        "attributes": {"enduser.id": user} if user else {}, "resource_id": resource_id,
        "events": "", "links": "", "source": source,
    }


@pytest.fixture
def known(runtime, tenant_maker):  # type: ignore[no-untyped-def]
    """Hand-made transactions of both sources whose figures are worked out in the tests."""
    t = tenant_maker(runtime.db, "perf")
    pid = t.project_id
    runtime.writer.write_sync(TRANSACTIONS, [
        # GET /a: 100 200 400 1000 1500 ms; one failure (u3); u4 frustrated (> 1200 ms)
        tx(pid, "GET /a", 100, user="id:u1"),
        tx(pid, "GET /a", 200, user="id:u2"),
        tx(pid, "GET /a", 400, user="id:u1"),
        tx(pid, "GET /a", 1000, "internal_error", user="id:u3"),
        tx(pid, "GET /a", 1500, user="id:u4", env="staging"),
        # POST /b: 50 60 ms; cancelled is no failure, not_found is
        tx(pid, "POST /b", 50, "cancelled", release="api@2"),
        tx(pid, "POST /b", 60, "not_found", user="id:u1", release="api@2"),
        # two days old: outside 24h, inside 7d
        tx(pid, "GET /a", 9000, "internal_error", user="id:old", minutes_ago=2 * 1440),
    ])
    runtime.writer.write_sync(RESOURCES, [{
        "project_id": pid, "resource_id": 77, "timestamp": NOW, "service": "checkout",
        "attributes": {"service.name": "checkout", "service.version": "svc@1",
                       "deployment.environment.name": "prod"}}])
    runtime.writer.write_sync(SPANS, [
        span(pid, "GET /otel", 10),
        span(pid, "GET /otel", 2000, error=True, user="o1"),
        span(pid, "GET /otel", 3000, kind=3),                  # a client span: not a transaction
        span(pid, "GET /a", 5000, source="sentry"),           # a Sentry root span: counted once
    ])
    # Another project's transaction never shows up.
    other = tenant_maker(runtime.db, "perf-other")
    runtime.writer.write_sync(TRANSACTIONS, [tx(other.project_id, "GET /a", 1)])
    return runtime.store, pid


def by_name(rows: list[pq.Figures]) -> dict[str, pq.Figures]:
    return {r.name: r for r in rows}


def test_figures_on_known_data(known):
    store, pid = known
    f = pq.Filters.for_period(pid, "24h", now=NOW + dt.timedelta(seconds=1))
    rows = by_name(pq.transactions(store, f))
    assert set(rows) == {"GET /a", "POST /b", "GET /otel"}

    a = rows["GET /a"]
    assert (a.count, a.op) == (5, "http.server")
    assert a.tpm == pytest.approx(5 / 1440)
    assert (a.p50, a.p75, a.p95) == (pytest.approx(400), pytest.approx(1000), pytest.approx(1400))
    assert a.failure_rate == pytest.approx(0.2)
    assert (a.satisfied, a.tolerating, a.frustrated) == (2, 2, 1)
    assert a.apdex == pytest.approx((2 + 2 / 2) / 5)
    assert (a.users, a.users_affected) == (4, 2)  # u3 failed, u4 frustrated

    b = rows["POST /b"]
    assert (b.p50, b.p75, b.p95) == (pytest.approx(55), pytest.approx(57.5), pytest.approx(59.5))
    assert b.failure_rate == pytest.approx(0.5) and b.apdex == 1.0
    assert (b.users, b.users_affected) == (1, 1)

    o = rows["GET /otel"]
    assert (o.count, o.op, o.failures) == (2, "http.server", 1)
    assert o.p50 == pytest.approx(1005) and o.p95 == pytest.approx(1900.5)
    assert o.apdex == pytest.approx(0.5) and (o.users, o.users_affected) == (1, 1)

    total = pq.totals(store, f)
    assert total.count == 9 and total.failures == 3
    assert total.p50 == pytest.approx(200)  # 10 50 60 100 [200] 400 1000 1500 2000

    # Sorting, both ways, by any column.
    assert [r.name for r in pq.transactions(store, f, "-p95")] == ["GET /otel", "GET /a", "POST /b"]
    assert [r.name for r in pq.transactions(store, f, "p95")] == ["POST /b", "GET /a", "GET /otel"]
    assert [r.name for r in pq.transactions(store, f, "name")] == ["GET /a", "GET /otel", "POST /b"]
    assert [r.name for r in pq.transactions(store, f, "-failure_rate")] == [
        "GET /otel", "POST /b", "GET /a"]  # a tie keeps name order
    assert pq.parse_sort("-bogus") == ("tpm", True)

    # The Apdex threshold moves satisfied/tolerating/frustrated and the users affected.
    strict = pq.Filters(pid, f.since, f.until, threshold_ms=50)
    a = by_name(pq.transactions(store, strict))["GET /a"]
    assert (a.satisfied, a.tolerating, a.frustrated) == (0, 2, 3)
    assert a.apdex == pytest.approx(0.2) and a.users_affected == 3  # u1 (400 ms), u3, u4


def test_filters_periods_and_series(known):
    store, pid = known
    now = NOW + dt.timedelta(seconds=1)
    res = pq.resources(store, pid)
    assert res.release == {77: "svc@1"} and res.environment == {77: "prod"}

    prod = by_name(pq.transactions(store, pq.Filters.for_period(pid, "24h", now=now,
                                                                environment="prod"), res=res))
    assert prod["GET /a"].count == 4 and prod["GET /otel"].count == 2
    svc = pq.transactions(store, pq.Filters.for_period(pid, "24h", now=now, release="svc@1"))
    assert [r.name for r in svc] == ["GET /otel"]
    api2 = pq.transactions(store, pq.Filters.for_period(pid, "24h", now=now, release="api@2"))
    assert [r.name for r in api2] == ["POST /b"]

    week = by_name(pq.transactions(store, pq.Filters.for_period(pid, "7d", now=now)))
    assert week["GET /a"].count == 6 and week["GET /a"].users == 5
    assert week["GET /a"].tpm == pytest.approx(6 / (7 * 1440))

    facets = pq.facets(store, pid, now - dt.timedelta(days=30), res)
    assert facets == {"environment": ["prod", "staging"], "release": ["api@1", "api@2", "svc@1"]}

    f = pq.Filters.for_period(pid, "24h", now=now)
    s = pq.series(store, f, 1800, res)
    assert sum(s.count) == 9 and sum(s.failures) == 3 and len(s.x) in (48, 49)
    busy = [i for i, n in enumerate(s.count) if n]
    assert all(s.p50[i] is not None for i in busy)
    assert all(s.p50[i] is None for i in range(len(s.x)) if i not in busy)
    one = pq.series(store, f, 1800, res, name="GET /otel")
    assert sum(one.count) == 2 and max(v for v in one.p95 if v is not None) == pytest.approx(1900.5)


def test_one_transaction(known):
    store, pid = known
    f = pq.Filters.for_period(pid, "24h", now=NOW + dt.timedelta(seconds=1))
    a = pq.totals(store, f, name="GET /a")
    assert a.count == 5 and a.p99 == pytest.approx(1480)
    assert a.min_ms == 100
    hist = pq.histogram(store, f, "GET /a", a.min_ms, a.p99)  # (1480 - 100) / 20 → 100 ms bins
    assert (hist.start_ms, hist.width_ms, hist.total) == (100, 100, 5)
    assert [i for i, c in enumerate(hist.counts) if c] == [0, 1, 3, 9, 14]
    assert pq.histogram(store, f, "GET /a", 100, 1000).counts[-1] == 1  # 1500 ms: the last bin
    assert pq.status_breakdown(store, f, "GET /a") == [("ok", 4), ("internal_error", 1)]
    slow = pq.samples(store, f, "GET /a", "slowest", 3)
    assert [s.duration_ms for s in slow] == [1500, 1000, 400]
    recent = pq.samples(store, f, "GET /otel", "recent", 5, pq.resources(store, pid))
    assert {s.release for s in recent} == {"svc@1"} and {s.source for s in recent} == {"otlp"}
    assert pq.nice_step(74) == 100 and pq.nice_step(0.3) == pytest.approx(0.5)
    assert pq.has_transactions(store, pid) and not pq.has_transactions(store, 999_999)


# -- pages and API with the real sentry-sdk -----------------------------------------------------


def login(client, email: str) -> None:  # type: ignore[no-untyped-def]
    client.cookies.clear()
    r = client.post("/login", data={"email": email, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text


def checkout_envelopes() -> list[bytes]:
    """Real sentry-sdk transactions: a slow failing checkout with spans and an error inside,
    and fast product pages."""
    with sdk(release="shop@1.2", environment="production", traces_sample_rate=1.0) as envelopes:
        for n in range(3):
            sentry_sdk.set_user({"id": f"user-{n}"})
            with sentry_sdk.start_transaction(op="http.server", name="POST /checkout") as t:
                with sentry_sdk.start_span(op="db.query", name="SELECT * FROM carts WHERE id = %s"):
                    time.sleep(0.02)
                with sentry_sdk.start_span(op="http.client", name="POST https://pay.example/charge"):
                    time.sleep(0.01)
                if n == 0:
                    try:
                        raise ValueError("card declined")
                    except ValueError:
                        sentry_sdk.capture_exception()
                    t.set_http_status(500)
                else:
                    t.set_http_status(200)
        for _ in range(4):
            with sentry_sdk.start_transaction(op="http.server", name="GET /products/<id>") as t:
                t.set_http_status(200)
    return envelopes


@pytest.fixture
def shop(client, tenant_factory):  # type: ignore[no-untyped-def]
    t = tenant_factory("shop")
    url = f"/api/{t.project_id}/envelope/?sentry_key={t.public_key}"
    for body in checkout_envelopes():
        assert client.post(url, content=body).status_code == 200
    with client.app.state.runtime.db.session() as s:
        project = s.get(Project, t.project_id)
        t.base = f"/o/{t.org}/p/{project.slug}"  # type: ignore[attr-defined]
    return t


def test_pages_with_real_sdk_transactions(client, shop):
    login(client, shop.email)
    r = client.get(shop.base + "/performance")
    assert r.status_code == 200
    html = r.text
    assert 'data-transaction="POST /checkout"' in html and 'data-transaction="GET /products/&lt;id&gt;"' in html
    assert 'id="perf-series"' in html and "uPlot.iife.min.js" in html
    assert 'aria-current="page"' in html and ">Performance<" in html  # the nav marks the area
    # Sorted by p95, slowest first: checkout (> 30 ms) before the product page.
    r = client.get(shop.base + "/performance?sort=-p95")
    assert r.text.index('data-transaction="POST /checkout"') < r.text.index('data-transaction="GET /products')
    assert 'aria-sort="descending"' in r.text

    r = client.get(shop.base + "/performance/summary", params={"transaction": "POST /checkout"})
    assert r.status_code == 200
    page = r.text
    assert "POST /checkout" in page and 'id="histogram"' in page
    assert "internal_error" in page and "33.3%" in page  # 1 of 3 failed
    # The slowest transaction's spans, with op and description, as a waterfall.
    assert "SELECT * FROM carts WHERE id = %s" in page and "db.query" in page
    assert page.count('class="wf-bar"') == 3
    trace_ids = set(re.findall(rf'href="{re.escape(shop.base)}/traces/([0-9a-f]{{32}})"', page))
    assert len(trace_ids) == 3
    # The error captured inside the transaction is a related issue.
    assert re.search(rf'href="{re.escape(shop.base)}/issues/[A-Z0-9-]+-1"', page)
    assert "card declined" in page

    r = client.get(shop.base + "/performance/summary", params={"transaction": "nope"})
    assert r.status_code == 200 and "No transactions named" in r.text


def test_json_api(client, shop, tenant_factory):
    r = client.get(f"/api/v1/projects/{shop.project_id}/transactions?statsPeriod=24h",
                   headers=shop.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["apdex_threshold_ms"] == 300 and body["statsPeriod"] == "24h"
    rows = {t["name"]: t for t in body["transactions"]}
    checkout = rows["POST /checkout"]
    assert checkout["count"] == 3 and checkout["failures"] == 1
    assert checkout["failure_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert checkout["p50_ms"] >= 30 and checkout["tpm"] == pytest.approx(3 / 1440, rel=1e-3)
    assert checkout["users"] == 3 and checkout["users_affected"] == 1
    assert rows["GET /products/<id>"]["apdex"] == 1.0
    assert body["totals"]["count"] == 7

    r = client.get(f"/api/v1/projects/{shop.project_id}/transactions",
                   params={"statsPeriod": "1h", "threshold": 1, "sort": "-p50"}, headers=shop.auth)
    assert r.json()["apdex_threshold_ms"] == 1
    assert r.json()["transactions"][0]["name"] == "POST /checkout"
    assert r.json()["transactions"][0]["apdex"] < 0.5
    assert client.get(f"/api/v1/projects/{shop.project_id}/transactions?statsPeriod=soon",
                      headers=shop.auth).status_code == 400
    assert client.get(f"/api/v1/projects/{shop.project_id}/transactions").status_code == 401
    stranger = tenant_factory("stranger")
    assert client.get(f"/api/v1/projects/{shop.project_id}/transactions",
                      headers=stranger.auth).status_code == 404
    schema = client.get("/api/openapi.json").json()
    assert "/api/v1/projects/{project_id}/transactions" in schema["paths"]


def test_roles_tenancy_and_empty_state(client, shop, tenant_factory):
    # A viewer of the organization reads both pages.
    with client.app.state.runtime.db.session() as s:
        accounts.create_user(s, "viewer@example.com", PASSWORD)
        accounts.set_member(s, accounts.get_or_create_org(s, shop.org), "viewer@example.com",
                            Role.viewer)
        s.commit()
    login(client, "viewer@example.com")
    assert client.get(shop.base + "/performance").status_code == 200
    assert client.get(shop.base + "/performance/summary?transaction=POST+/checkout"
                      ).status_code == 200

    # Another organization's member gets 404 on both, and their own empty project explains
    # how to enable tracing.
    other = tenant_factory("outsider")
    login(client, other.email)
    assert client.get(shop.base + "/performance").status_code == 404
    assert client.get(shop.base + "/performance/summary?transaction=POST+/checkout"
                      ).status_code == 404
    with client.app.state.runtime.db.session() as s:
        slug = s.get(Project, other.project_id).slug
    r = client.get(f"/o/{other.org}/p/{slug}/performance")
    assert r.status_code == 200
    assert "traces_sample_rate" in r.text and "OTEL_EXPORTER_OTLP_ENDPOINT" in r.text
    assert f"x-spyglass-key={other.public_key}" in r.text
    client.cookies.clear()
    r = client.get(shop.base + "/performance", follow_redirects=False)
    assert r.status_code == 303 and "/login" in r.headers["location"]


def test_opentelemetry_sdk_spans_are_transactions(client, shop):
    """Server spans from the real OpenTelemetry SDK over OTLP/HTTP join the Sentry ones."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        "service.name": "stock", "service.version": "stock@3",
        "deployment.environment.name": "production"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("stock.http")
    for n in range(4):
        with tracer.start_as_current_span(
                "GET /stock/{sku}", kind=SpanKind.SERVER,
                attributes={"http.request.method": "GET", "enduser.id": f"u{n}"}) as server:
            with tracer.start_as_current_span("SELECT stock", kind=SpanKind.CLIENT,
                                              attributes={"db.system": "postgresql"}):
                time.sleep(0.002)
            if n == 3:
                server.set_status(Status(StatusCode.ERROR))
    body = encode_spans(memory.get_finished_spans()).SerializeToString()
    r = client.post("/v1/traces", content=body, headers={
        "content-type": "application/x-protobuf", "x-spyglass-key": shop.public_key})
    assert r.status_code == 200, r.text

    api = f"/api/v1/projects/{shop.project_id}/transactions"
    rows = {t["name"]: t for t in client.get(api, headers=shop.auth).json()["transactions"]}
    stock = rows["GET /stock/{sku}"]
    assert (stock["count"], stock["op"], stock["failures"], stock["users"]) == (
        4, "http.server", 1, 4)
    assert stock["users_affected"] == 1 and "SELECT stock" not in rows
    assert rows["POST /checkout"]["count"] == 3  # the Sentry ones, not counted twice
    only = client.get(api, params={"release": "stock@3"}, headers=shop.auth).json()
    assert [t["name"] for t in only["transactions"]] == ["GET /stock/{sku}"]
    both = client.get(api, params={"environment": "production"}, headers=shop.auth).json()
    assert both["totals"]["count"] == 11

    login(client, shop.email)
    page = client.get(shop.base + "/performance/summary",
                      params={"transaction": "GET /stock/{sku}"}).text
    assert "stock@3" in page and "SELECT stock" in page and "db.postgresql" in page


# -- in the browser -----------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
def test_performance_in_the_browser(server_factory):
    from spyglass.kernel.meta.db import Database

    server = server_factory()
    db = Database(server.settings.metadata_url)
    with db.session() as s:
        user = accounts.create_user(s, "ada@example.com", PASSWORD)
        org = accounts.get_or_create_org(s, "Acme", owner=user)
        project = accounts.create_project(s, org, "Shop")
        key = accounts.active_key(s, project)
        pid, public_key, base = project.id, key.public_key, f"/o/{org.slug}/p/{project.slug}"
        s.commit()
    db.close()
    with httpx.Client() as http:
        for body in checkout_envelopes():
            r = http.post(f"{server.url}/api/{pid}/envelope/?sentry_key={public_key}", content=body)
            assert r.status_code == 200
    with chromium_page(1440, 900) as (page, problems):
        sign_in(page, server.url + base + "/performance", "ada@example.com", PASSWORD)
        page.wait_for_url(re.compile(r"/performance$"))
        page.wait_for_selector("#chart-throughput .uplot canvas")
        page.wait_for_selector("#chart-duration .uplot canvas")
        assert page.locator("#transactions tbody tr").count() == 2
        page.screenshot(path=str(SCREENSHOTS / "performance-list.png"), full_page=True)

        page.locator("th a[data-sort=p95]").click()
        page.wait_for_url(re.compile(r"sort=-p95"))
        assert page.locator("#transactions tbody tr").first.get_attribute(
            "data-transaction") == "POST /checkout"

        page.locator("#transactions td.name a", has_text="POST /checkout").click()
        page.wait_for_url(re.compile(r"/performance/summary\?transaction="))
        page.wait_for_selector("#chart-duration .uplot canvas")
        assert page.locator("#span-breakdown .wf-row").count() == 3
        assert page.locator("#slowest tbody tr").count() == 3
        assert page.locator("#related-issues a.mono").count() == 1
        page.screenshot(path=str(SCREENSHOTS / "performance-summary.png"), full_page=True)
    assert problems == []
