"""The issues pages in headless Chromium against a real server fed by the real sentry-sdk.

Screenshots of every page go to ``test-artifacts/screenshots/errors-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
import sentry_sdk
from chromium_page import SCREENSHOTS, chromium_page, needs_chromium, sign_in
from sdk_capture import sdk

from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.db import Database

PASSWORD = "correct horse battery"

pytestmark = [pytest.mark.browser, needs_chromium]


class PaymentDeclined(Exception):
    pass


def charge(order_id: int, amount: float) -> None:
    gateway = {"name": "stripe", "region": "eu-west-1"}  # noqa: F841 - sent as a local variable
    raise ValueError(f"card declined for order {order_id}")


def checkout(order_id: int) -> None:
    cart = {"items": 3, "total": 41.5}
    try:
        charge(order_id, cart["total"])
    except ValueError as exc:
        raise PaymentDeclined(f"payment failed for order {order_id}") from exc


def find_sku(sku: str) -> dict:  # type: ignore[type-arg]
    stock: dict[str, dict] = {}  # type: ignore[type-arg]
    return stock[sku]


def with_request(event, hint):  # type: ignore[no-untyped-def]
    event["request"] = {
        "method": "POST", "url": "https://shop.example.com/checkout",
        "query_string": "step=pay&coupon=SPRING",
        "headers": {"User-Agent": "Mozilla/5.0 Chrome/120.0", "Accept": "text/html"},
        "data": {"order": 17, "note": "leave at the door"},
    }
    return event


def capture(fn, *args) -> None:  # type: ignore[no-untyped-def]
    # Caught here, so the traceback holds no frame whose locals are the envelopes so far.
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - any crash site of the demo is reported
        sentry_sdk.capture_exception()


def envelopes() -> list[bytes]:
    out: list[bytes] = []
    users = ["ann", "bob", "cy", "dee"]
    for release, env, rounds in (("shop@2.3.0", "production", 5), ("shop@2.4.0", "production", 4),
                                 ("shop@2.4.0", "staging", 2)):
        with sdk(release=release, environment=env, server_name="web-1") as got:
            scope = sentry_sdk.get_current_scope()
            scope.add_event_processor(with_request)
            sentry_sdk.set_context("browser", {"name": "Chrome", "version": "120.0"})
            sentry_sdk.set_context("os", {"name": "macOS", "version": "14.2"})
            for n in range(rounds):
                sentry_sdk.set_user({"id": users[n % 4], "email": f"{users[n % 4]}@example.com"})
                sentry_sdk.set_tag("plan", ["pro", "free", "team"][n % 3])
                sentry_sdk.add_breadcrumb(category="navigation", message="/cart → /checkout")
                sentry_sdk.add_breadcrumb(category="http", message="POST /api/pay [402]",
                                          level="warning", data={"status_code": 402})
                capture(checkout, 1000 + n)
                if n % 2 == 0:
                    capture(find_sku, f"SKU-{n}")
            sentry_sdk.capture_message("Inventory sync took 12043 ms", level="warning")
            capture(int, "forty-two")
        out += got
    return out


@pytest.fixture
def browser(server_factory) -> Iterator[tuple]:  # type: ignore[no-untyped-def]
    server = server_factory()
    db = Database(server.settings.metadata_url)
    with db.session() as s:
        user = accounts.create_user(s, "ada@example.com", PASSWORD)
        org = accounts.get_or_create_org(s, "Acme", owner=user)
        project = accounts.create_project(s, org, "Shop")
        key = accounts.active_key(s, project)
        accounts.create_project(s, org, "Fresh")
        pid, public_key, org_slug, slug = project.id, key.public_key, org.slug, project.slug
        s.commit()
    db.close()
    url = f"{server.url}/api/{pid}/envelope/?sentry_key={public_key}"
    with httpx.Client() as http:
        for body in envelopes():
            assert http.post(url, content=body).status_code == 200
    with chromium_page(refused_requests=True) as (page, problems):
        yield server, page, problems, f"{server.url}/o/{org_slug}/p/{slug}", slug.upper()


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(SCREENSHOTS / f"errors-{name}.png"), full_page=True)


def test_triage_in_the_browser(browser):
    _, page, problems, base, prefix = browser
    sign_in(page, base + "/issues", "ada@example.com", PASSWORD)
    page.wait_for_url(re.compile(r"/issues"))

    rows = page.locator(".issue-row")
    assert rows.count() == 4
    assert "PaymentDeclined" in page.locator(".issue-list").inner_text()
    assert page.locator(".issue-row .spark rect").count() > 0
    shot(page, "issues-list")

    # Search syntax: a tag narrows the list.
    page.fill("[data-issue-search]", 'is:unresolved plan:team')
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"plan%3Ateam"))
    assert page.locator(".issue-row").count() == 2

    # The issue page: chart, tags, latest event with the chained exception and local variables.
    page.goto(base + "/issues")
    page.locator(".issue-title", has_text="PaymentDeclined").click()
    page.wait_for_url(re.compile(rf"/issues/{prefix}-\d+$"))
    assert page.locator(".exc").count() == 2
    text = page.locator("#exception").inner_text()
    assert "card declined for order" in text and "direct cause" in text
    assert page.locator(".frame.app[open] .ctx .cur").count() >= 1
    assert page.locator(".frame.app[open]", has_text="gateway").count() == 1
    assert page.locator(".tagdist").count() >= 5
    shot(page, "issue")

    # The event page, through All events.
    page.locator(".issue-tabs a", has_text="All events").click()
    page.wait_for_url(re.compile(r"/events$"))
    shot(page, "issue-events")
    page.locator("#events tbody tr a.mono").nth(3).click()
    page.wait_for_url(re.compile(r"/events/[0-9a-f]{32}$"))
    assert page.locator(".event-nav a", has_text="Newer").get_attribute("aria-disabled") is None
    assert "POST" in page.locator("#request").inner_text()
    assert "/cart → /checkout" in page.locator("#breadcrumbs").inner_text()
    shot(page, "event")

    # Resolve it.
    page.locator(".issue-actions button[value=resolve]").first.click()
    page.wait_for_url(re.compile(r"done=resolve"))
    assert "Resolved" in page.locator(".callout-success").inner_text()
    assert page.locator(".issue-actions button[value=unresolve]").count() == 1

    # Bulk-ignore another issue for an hour from the list (HTMX swaps the list).
    page.goto(base + "/issues")
    assert page.locator(".issue-row").count() == 3
    row = page.locator(".issue-row", has_text="KeyError")
    row.locator("input[name=issue]").check()
    assert page.locator("[data-selected-count]").inner_text() == "1 selected"
    page.locator(".bulk details.menu").nth(1).locator("summary").click()
    page.locator(".bulk .menu-list button[value=ignore_1h]").click()
    page.wait_for_selector(".callout-success")
    assert "Ignored for 1 hour" in page.locator(".callout-success").inner_text()
    assert page.locator(".issue-row").count() == 2
    shot(page, "issues-after-bulk")

    # Settings: an invalid rule is shown inline with its line; a valid one saves.
    page.goto(base + "/settings/errors")
    page.fill("textarea[name=fingerprint_rules]", "error.type:PaymentDeclined -> payments\nnot a rule")
    page.click("button:has-text('Save error settings')")
    page.wait_for_selector(".field-error")
    assert "Line 2" in page.locator(".field-error").first.inner_text()
    shot(page, "settings-invalid")
    page.fill("textarea[name=fingerprint_rules]", "error.type:PaymentDeclined -> payments")
    page.check("input[name=spike_protection]")
    page.click("button:has-text('Save error settings')")
    page.wait_for_url(re.compile(r"done=settings-saved"))
    shot(page, "settings")

    # A project without events explains how to send one.
    page.goto(base.rsplit("/p/", 1)[0] + "/p/fresh/issues")
    assert "Send your first event" in page.inner_text("main")
    shot(page, "empty")

    page.set_viewport_size({"width": 420, "height": 860})
    page.goto(base + "/issues?q=is%3Aall")
    shot(page, "issues-mobile")
    assert problems == []
