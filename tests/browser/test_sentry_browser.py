"""The real ``@sentry/browser`` (with Replay) in headless Chromium against a live server.

A test page on another origin than Spyglass (so CORS is real) loads the pinned SDK bundle
(``static/sentry-browser.min.js``, built by ``fetch_sdk.py``), inits it with the project's
DSN, and throws: an uncaught error from a named function in ``app.js``, an unhandled promise
rejection, and two Content-Security-Policy violations that the browser itself reports to
``/api/{pid}/security/``. Replay records the session. Afterwards the store must hold the
errors as issues with JavaScript stack frames, and the CSP violations as their own issues.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from spyglass.errors.envelope import parse_envelope
from spyglass.errors.models import Issue
from spyglass.kernel.meta.db import Database
from spyglass.kernel.telemetry import open_telemetry_store

STATIC = Path(__file__).resolve().parent / "static"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]


class PageServer(ThreadingHTTPServer):
    """The shop's own origin: static files, ``/config.js`` with the DSN, and CSP headers."""

    daemon_threads = True
    config: dict[str, str]


class PageHandler(SimpleHTTPRequestHandler):
    server: PageServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/config.js":
            body = b"window.SPYGLASS = " + orjson.dumps({"dsn": self.server.config["dsn"]}) + b";"
            self._send(body, "text/javascript")
        elif path == "/page.html":
            self._send((STATIC / "page.html").read_bytes(), "text/html; charset=utf-8",
                       {"Content-Security-Policy": self._policy()})
        else:
            super().do_GET()

    def _policy(self) -> str:
        c = self.server.config
        return (f"default-src 'self'; script-src 'self'; img-src 'self'; "
                f"style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
                f"connect-src 'self' {c['spyglass']}; report-uri {c['security_url']}")

    def _send(self, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    httpd = PageServer(("127.0.0.1", 0), partial(PageHandler, directory=str(STATIC)))
    httpd.config = {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def create_project(settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from spyglass.cli import main

    r = CliRunner().invoke(main, ["project", "create", "--org", "acme", "--name", "storefront",
                                  "--json", "--data-dir", str(settings.data_dir)],
                           env={"SPYGLASS_DATABASE_URL": settings.database_url})
    assert r.exit_code == 0, r.output
    return orjson.loads(r.output)


def security_requests(log_path: Path) -> list[int]:
    """Statuses of the server's answers to /security/ (reports are sent by the browser itself,
    outside the page, so the server's request log is where they show)."""
    statuses = []
    for line in log_path.read_text(errors="replace").splitlines():
        if "/security/" in line and '"request"' in line:
            found = re.search(r'"status":\s*(\d+)', line)
            if found:
                statuses.append(int(found.group(1)))
    return statuses


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_browser_sdk_errors_csp_and_replay_arrive(server_factory, settings, page_server):
    from playwright.sync_api import sync_playwright

    project = create_project(settings)
    server = server_factory()
    pid, key = project["id"], project["public_key"]
    host = server.url.split("://", 1)[1]
    page_server.config.update({
        "dsn": f"http://{key}@{host}/{pid}",
        "spyglass": server.url,
        "security_url": f"{server.url}/api/{pid}/security/?sentry_key={key}",
    })
    origin = f"http://127.0.0.1:{page_server.server_address[1]}"
    assert origin != server.url  # another origin: the SDK's requests are cross-origin

    sent: list[tuple[str, int, list[str]]] = []  # (path, status, envelope item types)
    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()

        def on_response(response) -> None:  # type: ignore[no-untyped-def]
            if not response.url.startswith(server.url):
                return
            body = response.request.post_data_buffer or b""
            types = []
            if "/envelope/" in response.url and body:
                types = [item.type for item in parse_envelope(body).items]
            sent.append((response.url.split("?")[0][len(server.url):], response.status, types))

        context.on("response", on_response)
        page = context.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        try:
            page.goto(origin + "/page.html")
            page.wait_for_function("window.sentryReady === true")
            assert page.evaluate("window.inlineRan") is None  # the CSP did block it
            assert page.evaluate("Sentry.SDK_VERSION") == "11.12.0"
            page.fill("#typing", "green tea")  # something for Replay to record
            page.click("#checkout")
            page.click("#pay")
            page.wait_for_timeout(300)
            page.evaluate("Sentry.getReplay().flush()")
            assert page.evaluate("Sentry.flush(10000)") is True
            assert page.evaluate("Sentry.getReplay().getReplayId()")
            # report-uri: Chromium itself posts application/csp-report, outside the page.
            assert wait_for(lambda: len(security_requests(server.log_path)) >= 2, 15), (
                server.log_path.read_text()[-3000:])
            observed = page.evaluate("window.cspReports")
            user_agent = page.evaluate("navigator.userAgent")
        finally:
            context.close()
            browser.close()

    # report-to: headless Chromium queues Reporting API reports but never delivered them here
    # (see docs/browser.md), so the same violations, as the page's ReportingObserver saw them,
    # are posted in the Reporting API's shape.
    assert {r["body"]["effectiveDirective"] for r in observed} == {"script-src-elem", "img-src"}
    reports = [{"type": r["type"], "age": 0, "url": r["url"], "user_agent": user_agent,
                "body": r["body"]} for r in observed]
    r = httpx.post(page_server.config["security_url"], content=orjson.dumps(reports),
                   headers={"Content-Type": "application/reports+json",
                            "User-Agent": user_agent, "Origin": origin})
    assert r.status_code == 200, r.text

    # Every request the SDK made was accepted, including Replay's items.
    assert sent and all(200 <= status < 300 for _, status, _ in sent), sent
    types = {t for _, _, ts in sent for t in ts}
    # @sentry/browser 11 streams spans (pageload ...) as "span" items, content type
    # application/vnd.sentry.items.span.v2+json, rather than "transaction" items.
    assert {"event", "session", "span", "replay_event", "replay_recording"} <= types, (
        types, console)
    assert set(security_requests(server.log_path)) == {200}
    server.stop()

    store = open_telemetry_store(settings.clickhouse_url, settings.data_dir)
    try:
        rows = store.rows("SELECT title, culprit, platform, issue_id, release, tags, data "
                          "FROM events WHERE project_id = {p:UInt64}", {"p": pid})
    finally:
        store.close()
    by_title = {r["title"]: r for r in rows}
    uncaught = next(r for t, r in by_title.items() if t.startswith("TypeError:"))
    rejection = by_title["Error: payment declined by issuer for amount 42"]
    csp_script = by_title["Blocked unsafe inline 'script'"]
    csp_image = by_title["Blocked 'image' from 'evil.example'"]

    for row in (uncaught, rejection):
        assert row["platform"] == "javascript" and row["release"] == "storefront@2.0.0"
        tags = dict(row["tags"])
        assert tags["page"] == "checkout" and tags["handled"] == "no"
        assert tags["user"] == "id:shopper-7"
    event = orjson.loads(uncaught["data"])
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    functions = [f.get("function") for f in frames]
    assert {"applyCoupon", "checkoutTotal"} <= set(functions), functions
    crash = frames[-1]
    assert crash["function"] == "applyCoupon" and crash["filename"].endswith("/app.js")
    assert crash["lineno"] == 7 and crash["in_app"] is not False
    assert "applyCoupon" in uncaught["culprit"]  # "app.js in applyCoupon"
    assert "checkout clicked" in orjson.dumps(event.get("breadcrumbs")).decode()
    # Browser and OS tags come from this header (see test_csp_reports.py for the SDK's case).
    assert "HeadlessChrome" in event["request"]["headers"]["User-Agent"]
    assert event["contexts"]["trace"]["trace_id"]
    assert orjson.loads(rejection["data"])["exception"]["values"][-1]["mechanism"]["type"] in (
        "onunhandledrejection", "auto.browser.global_handlers.onunhandledrejection")

    for row, directive in ((csp_script, "script-src-elem"), (csp_image, "img-src")):
        tags = dict(row["tags"])
        assert row["culprit"] == directive and tags["effective-directive"] == directive
        assert tags["browser.name"] == "HeadlessChrome" and tags["os.name"] == "Linux"
        assert tags["document-uri"].startswith(origin + "/page")
    assert dict(csp_image["tags"])["blocked-uri"] == "evil.example"

    db = Database(settings.metadata_url)
    try:
        with db.session() as s:
            issues = {i.id: i for i in s.scalars(select(Issue).where(Issue.project_id == pid))}
    finally:
        db.close()
    titles = {i.title for i in issues.values()}
    assert {uncaught["title"], rejection["title"], csp_script["title"],
            csp_image["title"]} <= titles
    # The report-uri and report-to reports of each violation share its issue.
    for title in (csp_script["title"], csp_image["title"]):
        same = [r for r in rows if r["title"] == title]
        assert len(same) == 2 and len({r["issue_id"] for r in same}) == 1
