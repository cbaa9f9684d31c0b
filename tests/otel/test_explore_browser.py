"""The logs explorer, the metrics explorer and a dashboard in headless Chromium, against a real
``spyglass serve`` fed over OTLP (JSON with an hour of history, and the real SDK for a log line
inside a span). Screenshots go to ``test-artifacts/screenshots/explore-*.png``."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from chromium_page import SCREENSHOTS, chromium_page, needs_chromium, sign_in
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.db import Database

PASSWORD = "correct horse battery"

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.filterwarnings("ignore:`LoggingHandler`:DeprecationWarning"),
]

SEVERITIES = [(9, "INFO"), (9, "INFO"), (9, "INFO"), (13, "WARN"), (17, "ERROR"), (5, "DEBUG")]
MESSAGES = ["GET /checkout 200 in 41 ms", "cart loaded for user 1042", "payment authorized",
            "slow query on orders (812 ms)", "upstream timeout calling payments",
            "cache hit ratio 0.93"]


def _attrs(d: dict) -> list[dict]:  # type: ignore[type-arg]
    return [{"key": k, "value": {"stringValue": v}} for k, v in d.items()]


def history(now_ns: int) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """An hour of logs from two services and of metrics (a counter by route, a histogram)."""
    records: dict[str, list] = {"checkout": [], "payments": []}  # type: ignore[type-arg]
    for i in range(240):
        service = "checkout" if i % 3 else "payments"
        n, text = SEVERITIES[(i * 7) % len(SEVERITIES)]
        records[service].append({
            "timeUnixNano": str(now_ns - (3590 - i * 15) * 10**9), "severityNumber": n,
            "severityText": text, "body": {"stringValue": MESSAGES[(i * 7) % len(MESSAGES)]},
            "attributes": _attrs({"http.route": ["/checkout", "/cart", "/pay"][i % 3]})})
    logs = {"resourceLogs": [{"resource": {"attributes": _attrs({"service.name": s,
                                                                 "host.name": f"{s}-1"})},
                              "scopeLogs": [{"logRecords": rs}]} for s, rs in records.items()]}
    start = str(now_ns - 7200 * 10**9)
    counter, histogram = [], []
    for route, per_minute in (("/checkout", 120), ("/cart", 300), ("/pay", 45)):
        total = 0
        for m in range(61):
            total += per_minute + (m * 37 % 23) * (per_minute // 20)
            ts = str(now_ns - (60 - m) * 60 * 10**9)
            counter.append({"startTimeUnixNano": start, "timeUnixNano": ts, "asInt": str(total),
                            "attributes": _attrs({"http.route": route})})
    cumulative = [0, 0, 0, 0, 0, 0]
    for m in range(61):
        for b, add in enumerate([5, 30, 40, 12 + m % 9, 3 + (m % 5), 1]):
            cumulative[b] += add
        histogram.append({"startTimeUnixNano": start,
                          "timeUnixNano": str(now_ns - (60 - m) * 60 * 10**9),
                          "count": str(sum(cumulative)), "sum": 1.0,
                          "explicitBounds": [10, 25, 50, 100, 250],
                          "bucketCounts": [str(c) for c in cumulative]})
    metrics = {"resourceMetrics": [{"resource": {"attributes": _attrs({"service.name": "checkout"})},
                                    "scopeMetrics": [{"metrics": [
        {"name": "http.server.requests", "unit": "{request}", "description": "requests handled",
         "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": counter}},
        {"name": "http.server.duration", "unit": "ms", "description": "request duration",
         "histogram": {"aggregationTemporality": 2, "dataPoints": histogram}}]}]}]}
    return logs, metrics


@pytest.fixture
def browser(server_factory) -> Iterator[tuple]:  # type: ignore[no-untyped-def]
    server = server_factory()
    db = Database(server.settings.metadata_url)
    with db.session() as s:
        user = accounts.create_user(s, "ada@example.com", PASSWORD)
        org = accounts.get_or_create_org(s, "Acme", owner=user)
        project = accounts.create_project(s, org, "Shop")
        key = accounts.active_key(s, project).public_key
        org_slug, slug = org.slug, project.slug
        s.commit()
    db.close()
    logs, metrics = history(time.time_ns())
    headers = {"x-spyglass-key": key}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        assert http.post("/v1/logs", json=logs).status_code == 200
        assert http.post("/v1/metrics", json=metrics).status_code == 200
    with chromium_page(refused_requests=True) as (page, problems):
        yield server, page, problems, f"{server.url}/o/{org_slug}/p/{slug}", key


def shot(page, name: str, full: bool = True) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(SCREENSHOTS / f"explore-{name}.png"), full_page=full)


def sdk_log_in_span(url: str, key: str) -> str:
    logs = LoggerProvider(resource=Resource.create({"service.name": "checkout"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(
        HttpLogs(endpoint=url + "/v1/logs", headers={"x-spyglass-key": key})))
    logger = logging.getLogger("test.explore.browser")
    handler = LoggingHandler(logger_provider=logs)
    logger.addHandler(handler)
    try:
        with TracerProvider().get_tracer("t").start_as_current_span("pay") as span:
            logger.error("card declined for order 17")
    finally:
        logger.removeHandler(handler)
        logs.shutdown()
    return format(span.get_span_context().trace_id, "032x")


def test_logs_metrics_and_dashboard_in_the_browser(browser) -> None:  # type: ignore[no-untyped-def]
    server, page, problems, base, key = browser
    sign_in(page, base + "/logs", "ada@example.com", PASSWORD)
    page.wait_for_url(re.compile(r"/logs"))

    # Logs: the stacked histogram, 100 lines and infinite scroll to the rest.
    page.wait_for_selector("#log-histogram canvas")
    assert page.locator("#log-lines details.log").count() == 100
    assert page.locator("#log-total").inner_text() == "240"
    page.locator("#load-more").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelectorAll('#log-lines details.log').length >= 200")
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#log-lines details.log").nth(1).locator("summary").click()
    shot(page, "logs", full=False)

    # Live tail: a line logged inside a span appears by itself, with a link to its trace.
    page.click("#live-tail")
    trace_id = sdk_log_in_span(server.url, key)
    fresh = page.locator("#log-lines details.log.fresh")
    fresh.first.wait_for(timeout=10_000)
    assert "card declined for order 17" in fresh.first.inner_text()
    assert fresh.first.locator(f"a.trace-chip[href$='/traces/{trace_id}']").count() == 1
    page.click("#live-tail")

    # Search: words and an attribute; severity facets.
    page.fill("#log-search", "TIMEOUT http.route=/cart")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=TIMEOUT"))
    bodies = page.locator("#log-lines details.log .body").all_inner_texts()
    assert bodies and all("upstream timeout" in b for b in bodies)
    assert page.locator("#log-lines mark").first.inner_text() == "timeout"
    page.locator("#log-lines details.log summary").first.click()
    shot(page, "logs-search")

    # Metrics: a counter's rate by route, the legend, then saved to a new dashboard.
    page.goto(base + "/metrics")
    page.fill("#metric-find", "requests")
    page.locator("#metric-list a", has_text="http.server.requests").click()
    page.wait_for_selector("#metric-chart canvas")
    page.fill("#q-group", "http.route")
    page.click("#metric-query button[type=submit]")
    page.wait_for_url(re.compile(r"group_by=http.route"))
    page.wait_for_selector("#metric-chart canvas")
    legend = page.locator("table[data-legend=metric-chart] tbody tr")
    assert legend.count() == 3
    assert legend.first.inner_text().startswith("http.route=/cart")
    shot(page, "metrics")
    page.fill("#save-panel input[name=new_name]", "Checkout service")
    page.click("#save-panel button[type=submit]")
    page.wait_for_url(re.compile(r"/metrics/dashboards/\d+$"))

    # A second panel: p95 of the histogram.
    page.goto(base + "/metrics?metric=http.server.duration&agg=p95")
    page.wait_for_selector("#metric-chart canvas")
    page.select_option("#save-panel select[name=dashboard]", label="Checkout service")
    page.click("#save-panel button[type=submit]")
    page.wait_for_url(re.compile(r"/metrics/dashboards/\d+$"))
    page.click(".seg a:text('1h')")
    page.wait_for_selector(".panel >> nth=1")
    page.wait_for_function("document.querySelectorAll('.panel canvas').length === 2")
    assert page.locator(".panel h2").all_inner_texts() == [
        "http.server.requests · rate /s by http.route", "http.server.duration · p95"]
    shot(page, "dashboard")
    page.goto(base + "/metrics/dashboards")
    assert "Checkout service" in page.locator("#dashboards").inner_text()
    assert problems == []
