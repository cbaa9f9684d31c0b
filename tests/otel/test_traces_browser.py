"""The trace pages in headless Chromium: search with its duration scatter (a click on a point
opens the trace), the waterfall (collapse, select a span, its details), the service map and a
service's RED charts; a screenshot of each into test-artifacts/screenshots/traces-*.png."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import pytest
from chromium_page import SCREENSHOTS, chromium_page, needs_chromium, sign_in
from test_traces_pages import PASSWORD, otlp, send, send_handmade, span, web_login

SERVICES = {"web": {"k8s.pod.name": "web-5d8f", "service.version": "3.2.0"},
            "api-gateway": {"k8s.pod.name": "gw-77c1", "service.version": "1.9.4"},
            "cart": {"k8s.pod.name": "cart-0", "service.version": "0.14.2"},
            "inventory": {"k8s.pod.name": "inv-2", "service.version": "2.0.1"},
            "payments": {"k8s.pod.name": "pay-1", "service.version": "5.1.0"},
            "notifications": {"k8s.pod.name": "notify-3", "service.version": "1.0.0"}}


def checkout(n: int, base_ns: int, rng: random.Random) -> tuple[str, dict[str, list[Any]]]:
    """One checkout across six services; some fail in payments with an exception."""
    t = f"{n + 1:04x}" + "c0ffee" * 4 + f"{rng.getrandbits(40):010x}"
    t = t[:32]
    fail = n % 5 == 3
    pay_ms = rng.uniform(40, 90) if not fail else rng.uniform(150, 260)
    inv_ms = rng.uniform(8, 30)
    ids = {k: f"{n:04x}{i:012x}" for i, k in enumerate(
        ("root", "gw", "gwsrv", "cart", "cartdb", "cache", "inv", "invsrv", "invdb", "pay",
         "paysrv", "fraud", "charge", "notify", "send"))}
    at = 0.0
    s: dict[str, list[Any]] = {k: [] for k in SERVICES}
    kw = {"base_ns": base_ns}
    s["web"] += [span(t, ids["root"], "", "POST /checkout", 0, 40 + inv_ms + pay_ms + 30,
                      error=fail, **kw, **{"http.route": "/checkout",
                                           "http.request.method": "POST",
                                           "http.response.status_code": 502 if fail else 200,
                                           "enduser.id": f"user-{n % 7}"}),
                 span(t, ids["gw"], ids["root"], "POST", 2, 36 + inv_ms + pay_ms + 24, kind=3,
                      error=fail, **kw, **{"peer.service": "api-gateway"})]
    s["api-gateway"] += [span(t, ids["gwsrv"], ids["gw"], "POST /v1/orders", 4,
                              32 + inv_ms + pay_ms + 20, error=fail, **kw,
                              **{"http.route": "/v1/orders"})]
    at = 6
    s["api-gateway"] += [span(t, ids["cart"], ids["gwsrv"], "GET cart", at, 14, kind=3, **kw)]
    s["cart"] += [span(t, ids["cartdb"], ids["cart"], "GET /carts/{id}", at + 1, 12, **kw,
                       **{"http.route": "/carts/{id}"}),
                  span(t, ids["cache"], ids["cartdb"], "HGETALL cart", at + 2, 3, kind=3, **kw,
                       **{"db.system": "redis"})]
    at += 16
    s["api-gateway"] += [span(t, ids["inv"], ids["gwsrv"], "POST reserve", at, inv_ms + 4,
                              kind=3, **kw)]
    s["inventory"] += [span(t, ids["invsrv"], ids["inv"], "POST /reservations", at + 1,
                            inv_ms + 2, **kw, **{"http.route": "/reservations"}),
                       span(t, ids["invdb"], ids["invsrv"], "UPDATE stock", at + 2, inv_ms - 2,
                            kind=3, **kw, **{"db.system": "postgresql",
                                             "db.statement": "UPDATE stock SET reserved = "
                                                             "reserved + $1 WHERE sku = $2"})]
    at += inv_ms + 6
    s["api-gateway"] += [span(t, ids["pay"], ids["gwsrv"], "POST charge", at, pay_ms + 4,
                              kind=3, error=fail, **kw)]
    pay = span(t, ids["paysrv"], ids["pay"], "POST /charges", at + 1, pay_ms + 2, error=fail,
               **kw, **{"http.route": "/charges", "http.response.status_code":
                        502 if fail else 201, "payment.provider": "stripe"})
    if fail:
        pay["events"] = [{"name": "exception", "timeUnixNano": str(base_ns + int((at + pay_ms)
                                                                             * 1e6)),
                          "attributes": [
                              {"key": "exception.type", "value": {"stringValue":
                                                                  "CardDeclinedError"}},
                              {"key": "exception.message", "value": {"stringValue":
                                                                     "card_declined: "
                                                                     "insufficient funds"}},
                              {"key": "exception.stacktrace", "value": {"stringValue":
                                  'Traceback (most recent call last):\n  File "pay/api.py", '
                                  'line 88, in create_charge\n    result = gateway.charge('
                                  'card, amount)\n  File "pay/gateway.py", line 41, in charge'
                                  '\n    raise CardDeclinedError(resp.code)\nCardDeclinedError:'
                                  ' card_declined: insufficient funds'}}]}]
        pay["status"] = {"code": 2, "message": "card declined"}
    s["payments"] += [pay,
                      span(t, ids["fraud"], ids["paysrv"], "fraud check", at + 2, 12, kind=1,
                           **kw),
                      span(t, ids["charge"], ids["paysrv"], "POST stripe /v1/charges", at + 16,
                           pay_ms - 16, kind=3, error=fail, **kw,
                           **{"peer.service": "stripe"})]
    at += pay_ms + 8
    s["api-gateway"] += [span(t, ids["notify"], ids["gwsrv"], "publish order.created", at, 2,
                              kind=4, **kw)]
    s["notifications"] += [span(t, ids["send"], ids["notify"], "order.created process",
                                at + 4, 35, kind=5, **kw)]
    return t, s


@pytest.mark.browser
@needs_chromium
def test_trace_pages_in_the_browser(live):
    rng = random.Random(7)
    now = time.time_ns()
    traces = []
    for n in range(24):
        base_ns = now - int((55 - n * 2.2) * 60e9)
        t, per_service = checkout(n, base_ns, rng)
        traces.append(t)
        for service, spans in per_service.items():
            if spans:
                send(live, otlp(service, spans, **SERVICES[service]))
    send_handmade(live)
    failed = traces[3]
    _logs(live, failed, now)
    web_login(live).close()
    base = f"/o/{live.org_slug}/p/{live.project_slug}"
    with chromium_page(1440, 900) as (page, problems):
        sign_in(page, live.url + base + "/traces", "ada@example.com", PASSWORD)
        page.wait_for_url(re.compile(r"/traces$"))
        page.wait_for_selector("#trace-scatter .uplot canvas")
        assert page.locator("#traces tbody tr").count() == 27
        page.screenshot(path=str(SCREENSHOTS / "traces-search.png"), full_page=True)

        # Filter by a resource attribute through the form.
        page.fill("#f-tags", "k8s.pod.name=pay-1 error=true")
        page.click("#trace-search button[type=submit]")
        page.wait_for_url(re.compile(r"tags="))
        assert page.locator("#traces tbody tr").count() == 5

        # A click on a point of the scatter opens that trace.
        page.wait_for_selector("#trace-scatter .uplot canvas")
        x, y = page.evaluate("""() => {
            const el = document.getElementById('trace-scatter'), u = el._uplot;
            const s = JSON.parse(document.getElementById('scatter-data').textContent);
            const r = u.over.getBoundingClientRect();
            const v = s.ok[0] != null ? s.ok[0] : s.error[0];
            return [r.left + u.valToPos(s.x[0], 'x'), r.top + u.valToPos(v, 'y')];
        }""")
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        page.wait_for_url(re.compile(r"/traces/[0-9a-f]{32}$"))

        page.goto(f"{live.url}{base}/traces/{failed}")
        rows = page.locator("#waterfall .wf-row[data-span-id]")
        assert rows.count() == 15
        # Collapse the gateway's subtree, then expand it again.
        gateway = page.locator(f"#row-{3:04x}{2:012x}")
        gateway.locator(".wf-toggle").click()
        assert page.locator("#waterfall .wf-row[data-span-id]:visible").count() == 3
        page.click("#wf-expand")
        assert page.locator("#waterfall .wf-row[data-span-id]:visible").count() == 15
        # Select the failed payment span: its details open below it, the URL says which.
        pay = page.locator(f"#row-{3:04x}{10:012x}")
        pay.click()
        detail = page.locator(f"#detail-{3:04x}{10:012x}")
        assert detail.is_visible()
        assert "CardDeclinedError" in detail.locator(".det-exception").inner_text()
        assert "payment.provider" in detail.inner_text() and "pay-1" in detail.inner_text()
        assert page.url.endswith(f"#span-{3:04x}{10:012x}")
        page.screenshot(path=str(SCREENSHOTS / "traces-trace.png"), full_page=True)
        # A log line links to its span.
        page.locator("#logs a[data-goto-span]").first.click()
        assert page.locator(".wf-row.selected").count() == 1

        page.goto(f"{live.url}{base}/services")
        page.wait_for_selector("#service-map .node")
        assert page.locator("#service-map .edge").count() >= 10
        page.locator('#service-map .node[data-node="payments"]').hover()
        assert "focus" in (page.locator("#service-map").get_attribute("class") or "")
        page.mouse.move(5, 5)
        page.screenshot(path=str(SCREENSHOTS / "traces-services.png"), full_page=True)
        page.locator('#service-map .node[data-node="payments"]').click()
        page.wait_for_url(re.compile(r"/services/payments$"))
        page.wait_for_selector("#chart-duration .uplot canvas")
        page.wait_for_selector("#chart-errors .uplot canvas")
        page.screenshot(path=str(SCREENSHOTS / "traces-service.png"), full_page=True)
    assert problems == []


def _logs(live: Any, trace: str, now_ns: int) -> None:
    import datetime as dt

    from spyglass.otel.schema import LOGS

    at = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=(now_ns - int(48.4 * 60e9)) // 1000)
    lines = [("api-gateway", 9, "INFO", "order accepted for checkout", 2),
             ("inventory", 9, "INFO", "reserved 2 items of sku 8812", 7),
             ("payments", 13, "WARN", "charge retry 1/2 after provider timeout", 10),
             ("payments", 17, "ERROR", "card_declined: insufficient funds", 10),
             ("web", 17, "ERROR", "checkout failed: upstream returned 502", 0)]
    live.runtime.writer.write_sync(LOGS, [{
        "project_id": live.tenant.project_id, "timestamp": at + dt.timedelta(milliseconds=i * 20),
        "observed": at, "service": service, "severity_number": sev, "severity_text": text,
        "body": body, "trace_id": trace, "span_id": f"{3:04x}{k:012x}", "event_name": "",
        "scope_name": "", "attributes": {}, "resource_id": 0, "source": "otlp"}
        for i, (service, sev, text, body, k) in enumerate(lines)])
