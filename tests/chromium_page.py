"""Headless Chromium for the page tests: one browser, one page, and what went wrong on it.

Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it) driven by Playwright. Every
page test watches the same things: console errors, uncaught page errors, and static files
that failed to load; dialogs (``confirm()`` before a bulk action) are accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)")


@contextmanager
def chromium_page(width: int = 1440, height: int = 900, *,
                  refused_requests: bool = False) -> Iterator[tuple[Any, list[str]]]:
    """A page in a fresh headless Chromium, and the list its problems are appended to.

    With ``refused_requests``, the page visits URLs answered with 401/404 on purpose, so the
    console's "Failed to load resource" lines are not problems; a static file that fails is
    still one (watched on the responses, which every page test does)."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type != "error":
            return
        if refused_requests and "Failed to load resource" in message.text:
            return
        problems.append(f"console: {message.text}")

    def response(r: Any) -> None:
        if r.status >= 400 and ("/static/" in r.url or "/assets/" in r.url):
            problems.append(f"{r.status} {r.url}")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.on("console", console)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("response", response)
        page.on("dialog", lambda d: d.accept())
        try:
            yield page, problems
        finally:
            context.close()
            browser.close()


def sign_in(page: Any, url: str, email: str, password: str) -> None:
    """Open ``url`` signed out (the server shows its login form) and sign in there; the
    form sends the browser back to ``url``."""
    page.goto(url)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
