"""The logs explorer: search, filters, histogram, keyset paging, live tail, context, the JSON
API, tenancy, and logs with trace context from the real OpenTelemetry SDK."""

from __future__ import annotations

import datetime as dt
import html
import logging
import re

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spyglass.otel import logs_queries as lq
from spyglass.otel.resources import RESOURCES
from spyglass.otel.schema import LOGS

pytestmark = pytest.mark.filterwarnings("ignore:`LoggingHandler`:DeprecationWarning")

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def line(pid: int, body: str, *, seconds_ago: float = 60, service: str = "api", sev: int = 9,
         trace: str = "", attrs: dict | None = None, resource_id: int = 0) -> dict:
    ts = NOW - dt.timedelta(seconds=seconds_ago)
    return {"project_id": pid, "timestamp": ts, "observed": ts, "service": service,
            "severity_number": sev, "severity_text": "", "body": body, "trace_id": trace,
            "span_id": "00f067aa0ba902b7" if trace else "", "event_name": "", "scope_name": "app",
            "attributes": attrs or {}, "resource_id": resource_id, "source": "otlp"}


def login(client, tenant) -> str:  # type: ignore[no-untyped-def]
    assert client.post("/login", data={"email": tenant.email, "password": tenant.password},
                       follow_redirects=False).status_code == 303
    return f"/o/{tenant.org}/p/{tenant.org.removeprefix('org-')}-app"


@pytest.fixture
def seeded(client, tenant_factory):  # type: ignore[no-untyped-def]
    t = tenant_factory("logs")
    pid = t.project_id
    rt = client.app.state.runtime
    rt.writer.write_sync(RESOURCES, [{"project_id": pid, "resource_id": 7, "timestamp": NOW,
                                      "service": "api", "attributes": {"service.name": "api",
                                                                       "host.name": "web-3"}}])
    rt.writer.write_sync(LOGS, [
        line(pid, "Connection RESET by peer", sev=17, trace=TRACE, seconds_ago=30,
             attrs={"http.route": "/checkout"}, resource_id=7),
        line(pid, "payment timeout after 3s", sev=13, seconds_ago=40,
             attrs={"http.route": "/pay"}),
        line(pid, "user logged in", sev=9, service="auth", seconds_ago=50),
        line(pid, "cache miss for key", sev=5, service="worker", seconds_ago=70),
        line(pid, "FATAL disk full", sev=21, service="worker", seconds_ago=80),
        line(pid, "no severity here", sev=0, service="worker", seconds_ago=90),
        line(pid, "an old line", seconds_ago=3 * 3600),
    ])
    return client, t, pid, rt.store


def _q(pid: int, query: str = "", **kw) -> lq.LogQuery:  # type: ignore[no-untyped-def]
    return lq.LogQuery.parse(pid, NOW - dt.timedelta(hours=1), NOW + dt.timedelta(minutes=1),
                             query, **kw)


def _bodies(store, q) -> list[str]:  # type: ignore[no-untyped-def]
    return [r["body"] for r in lq.page(store, q)[0]]


def test_search_and_filters(seeded) -> None:  # type: ignore[no-untyped-def]
    _, _, pid, store = seeded
    assert _bodies(store, _q(pid, "reset")) == ["Connection RESET by peer"]
    assert _bodies(store, _q(pid, '"timeout after"')) == ["payment timeout after 3s"]
    assert _bodies(store, _q(pid, "payment 3S")) == ["payment timeout after 3s"]
    assert _bodies(store, _q(pid, "payment missing")) == []
    # attributes of the line, and of its resource
    assert _bodies(store, _q(pid, "http.route=/pay")) == ["payment timeout after 3s"]
    assert _bodies(store, _q(pid, "host.name=web-3")) == ["Connection RESET by peer"]
    assert len(_bodies(store, _q(pid, "http.route!=/pay"))) == 5
    # columns, levels, min level, services, trace ids (whole or prefix)
    assert _bodies(store, _q(pid, "service=auth")) == ["user logged in"]
    assert _bodies(store, _q(pid, "level=error")) == ["Connection RESET by peer"]
    assert _bodies(store, _q(pid, levels=["fatal", "unset"])) == ["FATAL disk full",
                                                                 "no severity here"]
    assert _bodies(store, _q(pid, min_level="warn")) == [
        "Connection RESET by peer", "payment timeout after 3s", "FATAL disk full"]
    assert _bodies(store, _q(pid, services=["worker", "auth"])) == [
        "user logged in", "cache miss for key", "FATAL disk full", "no severity here"]
    assert _bodies(store, _q(pid, f"trace_id={TRACE}")) == ["Connection RESET by peer"]
    q = _q(pid)
    q.trace_id = TRACE[:8]
    assert _bodies(store, q) == ["Connection RESET by peer"]
    # the time range
    assert "an old line" not in _bodies(store, _q(pid))


def test_histogram_stacks_by_level(seeded) -> None:  # type: ignore[no-untyped-def]
    _, _, pid, store = seeded
    h = lq.histogram(store, _q(pid), 60)
    assert h["total"] == 6
    assert {n: sum(h[n]) for n in lq.STACK} == {"fatal": 1, "error": 1, "warn": 1, "info": 1,
                                                 "debug": 1, "trace": 0, "unset": 1}
    assert len(h["x"]) == len(h["info"]) and h["x"] == sorted(h["x"])


def test_keyset_paging_never_repeats_or_skips(client, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = tenant_factory("paging")
    rt = client.app.state.runtime
    # 23 lines, many sharing one timestamp: pages of 5 must still list each exactly once.
    rows = [line(t.project_id, f"line {i:02d}", seconds_ago=10 + (i // 6)) for i in range(23)]
    rt.writer.write_sync(LOGS, rows)
    q = _q(t.project_id)
    seen, cursor, pages = [], None, 0
    while True:
        got, cursor = lq.page(rt.store, q, cursor, limit=5)
        seen += [r["body"] for r in got]
        pages += 1
        if cursor is None:
            break
        assert lq.Cursor.decode(cursor.encode()) == cursor
    assert pages == 5 and sorted(seen) == sorted(r["body"] for r in rows)
    assert len(seen) == len(set(seen))
    stamps = [r["timestamp"] for r in lq.page(rt.store, q, None, limit=100)[0]]
    assert stamps == sorted(stamps, reverse=True)


def test_tail_returns_only_new_lines(seeded) -> None:  # type: ignore[no-untyped-def]
    client, _, pid, store = seeded
    q = _q(pid)
    start = lq.latest_cursor(store, q)
    assert lq.newer(store, q, start)[0] == []
    client.app.state.runtime.writer.write_sync(LOGS, [
        line(pid, "fresh one", seconds_ago=5), line(pid, "fresh two", seconds_ago=5),
        line(pid, "fresh three", seconds_ago=1)])
    rows, nxt = lq.newer(store, q, start)
    assert [r["body"] for r in rows][-1] == "fresh three" and len(rows) == 3
    assert lq.newer(store, q, nxt)[0] == []


def test_pages_api_and_tenancy(seeded, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    client, t, pid, _ = seeded
    base = login(client, t)
    page = client.get(f"{base}/logs")
    assert page.status_code == 200
    text = page.text
    assert "Connection RESET by peer" in text and f'href="{base}/traces/{TRACE}"' in text
    assert 'id="log-histogram"' in text and "web-3" in text  # resource attributes expanded
    assert "Show context" in text
    found = client.get(f"{base}/logs", params={"q": "reset", "level": "error"}).text
    assert "<mark>RESET</mark>" in found and "payment timeout" not in found
    # the tail poller asks from the newest line on; new lines arrive through it
    tail_url = html.unescape(re.search(r'id="log-tail" hx-get="([^"]+)"', text).group(1))
    assert client.get(tail_url).text.count("<details") == 0
    client.app.state.runtime.writer.write_sync(LOGS, [line(pid, "tailed line", seconds_ago=0)])
    tailed = client.get(tail_url).text
    assert "tailed line" in tailed and 'hx-swap-oob="true"' in tailed
    new_url = html.unescape(re.search(r'hx-get="([^"]+)"', tailed.split("hx-swap-oob")[1])
                            .group(1))
    assert "tailed line" not in client.get(new_url).text
    # context: the lines of the same service around one line
    ctx = client.get(f"{base}/logs/context", params={
        "service": "worker", "at": (NOW - dt.timedelta(seconds=80)).isoformat()})
    assert ctx.status_code == 200 and "FATAL disk full" in ctx.text and "anchor" in ctx.text
    assert "user logged in" not in ctx.text
    # JSON API
    r = client.get(f"/api/v1/projects/{pid}/logs", headers=t.auth,
                   params={"query": "host.name=web-3", "severity": "warn+"})
    assert r.status_code == 200
    lines = r.json()["lines"]
    assert [x["body"] for x in lines] == ["Connection RESET by peer"]
    assert lines[0]["resource"]["host.name"] == "web-3" and lines[0]["level"] == "error"
    r = client.get(f"/api/v1/projects/{pid}/logs", headers=t.auth, params={"limit": 2})
    assert len(r.json()["lines"]) == 2 and r.json()["next_cursor"]
    r2 = client.get(f"/api/v1/projects/{pid}/logs", headers=t.auth,
                    params={"limit": 2, "cursor": r.json()["next_cursor"]})
    assert r2.json()["lines"][0]["body"] != r.json()["lines"][-1]["body"]
    assert "/api/v1/projects/{project_id}/logs" in client.get("/api/openapi.json").json()["paths"]
    # another organization's member sees nothing
    other = tenant_factory("stranger")
    assert client.get(f"/api/v1/projects/{pid}/logs", headers=other.auth).status_code == 404
    client.post("/logout", data={"csrf_token": re.search(
        r'name="csrf_token" value="([^"]+)"', text).group(1)})
    login(client, other)
    assert client.get(f"{base}/logs").status_code == 404


def test_sdk_logs_with_trace_context_link_to_their_trace(live, tenant_maker) -> None:  # type: ignore[no-untyped-def]
    logs = LoggerProvider(resource=Resource.create({"service.name": "shop",
                                                    "deployment.environment.name": "prod"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(
        HttpLogs(endpoint=live.url + "/v1/logs", headers=live.headers())))
    tracer = TracerProvider().get_tracer("t")
    logger = logging.getLogger("test.explorer.logs")
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(logger_provider=logs)
    logger.addHandler(handler)
    try:
        logger.info("cart opened", extra={"cart.items": 3})
        with tracer.start_as_current_span("checkout") as span:
            logger.warning("card declined for order 17")
    finally:
        logger.removeHandler(handler)
    logs.force_flush()
    trace_id = format(span.get_span_context().trace_id, "032x")
    q = lq.LogQuery.parse(live.tenant.project_id, NOW - dt.timedelta(hours=1),
                          dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=1),
                          "deployment.environment.name=prod DECLINED")
    rows, _ = lq.page(live.store, q)
    assert [r["body"] for r in rows] == ["card declined for order 17"]
    assert rows[0]["trace_id"] == trace_id and rows[0]["severity_number"] == 13
    q = lq.LogQuery.parse(live.tenant.project_id, q.since, q.until, "cart.items=3")
    assert [r["body"] for r in lq.page(live.store, q)[0]] == ["cart opened"]
