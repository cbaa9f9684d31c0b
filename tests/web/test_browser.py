"""The web UI in real headless Chromium against a real ``spyglass serve`` process.

Every page visited is saved as a full-page screenshot in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from chromium_page import SCREENSHOTS, chromium_page, needs_chromium
from web_helpers import PASSWORD

from spyglass.app import load_features
from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.db import Database
from spyglass.kernel.web.templating import NAV_AREAS

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture
def browser_page(server_factory) -> Iterator[tuple]:  # type: ignore[no-untyped-def]
    server = server_factory()
    db = Database(server.settings.metadata_url)
    with db.session() as s:
        owner = accounts.create_user(s, "ada@example.com", PASSWORD)
        accounts.get_or_create_org(s, "Acme", owner=owner)
        accounts.get_or_create_org(s, "Globex", owner=owner)
    db.close()
    # Some pages are answered with 401/404 on purpose.
    with chromium_page(1360, 860, refused_requests=True) as (page, problems):
        yield server, page, problems


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def nav_link(page, label: str):  # type: ignore[no-untyped-def]
    return page.locator("aside .nav-link").filter(
        has=page.locator("span", has_text=re.compile(f"^{re.escape(label)}$"))
    )


def test_login_create_project_and_visit_every_page(browser_page):
    server, page, problems = browser_page
    url = server.url

    # Log in through the form; an anonymous visit lands on the login page first.
    page.goto(url + "/o/acme/")
    assert "/login" in page.url
    shot(page, "01-login")
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert page.locator(".callout-error").inner_text() == "Wrong email or password."
    shot(page, "02-login-failed")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/o/acme/")
    assert page.locator(".user-email").inner_text() == "ada@example.com"
    shot(page, "03-org-without-projects")

    # Create a project from the org page and see its DSN.
    page.fill("#create-project input[name=name]", "Web Shop")
    page.click("#create-project button[type=submit]")
    page.wait_for_url(re.compile(r"/o/acme/p/web-shop/settings\?done=project-created$"))
    dsn = page.locator("#dsn .copy-value").inner_text()
    assert re.fullmatch(rf"http://[0-9a-f]{{32}}@localhost:{server.settings.port}/\d+", dsn), dsn
    assert page.get_by_text("Project created.").is_visible()
    shot(page, "04-project-created-dsn")

    # Every nav area, reached by clicking the sidebar. Which areas are built is decided by the
    # features the server loaded: load the same ones here.
    load_features()
    for area in NAV_AREAS:
        nav_link(page, area.label).click()
        page.wait_for_load_state()
        assert page.locator(".nav-link.active").inner_text().startswith(area.label)
        if not area.built:
            assert page.locator("h1").inner_text() == f"{area.label} is not built yet"
            assert area.description in page.locator(".plan").inner_text()
        shot(page, f"area-{area.slug}")

    # Settings pages.
    nav_link(page, "Project settings").click()
    page.fill("input[name=retention_days]", "30")
    page.click("text=Save changes")
    page.wait_for_url(re.compile(r"done=project-saved"))
    assert page.input_value("input[name=retention_days]") == "30"
    shot(page, "settings-project")

    nav_link(page, "Client keys (DSN)").click()
    page.fill("input[name=label]", "production")
    page.click("text=Create key")
    page.wait_for_url(re.compile(r"done=key-created"))
    assert page.locator("tbody tr").count() == 2
    page.locator("tbody tr", has_text="production").locator("text=Rotate").click()
    page.wait_for_url(re.compile(r"done=key-rotated"))
    assert page.locator("tbody tr .badge-off").count() == 1
    shot(page, "settings-keys")

    nav_link(page, "Members").click()
    assert page.locator("tbody tr").count() == 1
    page.fill("input[name=email]", "nobody@example.com")
    page.click("text=Add member")
    assert "no user with email nobody@example.com" in page.locator(".callout-error").inner_text()
    shot(page, "settings-members")

    nav_link(page, "API tokens").click()
    page.fill("input[name=name]", "deploy script")
    page.click("text=Create token")
    token = page.locator("#new-token .copy-value").inner_text()
    assert token.startswith(token[:8]) and len(token) > 20
    shot(page, "settings-tokens-new")
    page.goto(url + "/settings/tokens")  # shown once: a later visit no longer shows it
    assert page.locator("#new-token").count() == 0
    assert token not in page.content()
    shot(page, "settings-tokens")

    # A second project and the switchers.
    page.goto(url + "/o/acme/projects/new")
    shot(page, "project-new")
    page.fill("input[name=name]", "API")
    page.click("button:has-text('Create project')")
    page.wait_for_url(re.compile(r"/o/acme/p/api/settings"))
    nav_link(page, "Logs").click()
    page.select_option("select[name=project-switcher]", label="Web Shop")
    page.wait_for_url(url + "/o/acme/p/web-shop/logs")
    page.select_option("select[name=org-switcher]", label="Globex")
    page.wait_for_url(url + "/o/globex/")
    page.goto(url + "/o/acme/")
    shot(page, "org-overview")

    # An error page inside the layout.
    page.goto(url + "/o/acme/p/no-such-project/settings")
    assert page.locator("h1").inner_text() == "Page not found"
    shot(page, "error-404")

    # Small screens: the sidebar folds away behind a menu button.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url + "/o/acme/p/web-shop/settings/keys")
    assert not page.locator("aside.sidebar").is_visible() or page.locator(
        "aside.sidebar").bounding_box()["x"] < 0
    shot(page, "mobile-keys")
    page.click(".menu-toggle")
    page.wait_for_timeout(300)
    shot(page, "mobile-menu-open")
    page.set_viewport_size({"width": 1360, "height": 860})

    # Log out.
    page.click("button[aria-label='Log out']")
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(url + "/settings/tokens")
    assert "/login?next=/settings/tokens" in page.url

    assert problems == []
