"""``/api/{project_id}/security/``: both CSP report shapes, auth, limits, grouping into issues.

The bodies are what Chromium sends (captured from the browser test): ``report-uri`` gives
``application/csp-report``, ``report-to`` gives the Reporting API's ``application/reports+json``.
"""

from __future__ import annotations

import gzip

import orjson
import pytest
from sqlalchemy import select

from spyglass.errors.models import Issue
from spyglass.errors.security import blocked_display, message

UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "HeadlessChrome/131.0.6778.85 Safari/537.36")


def csp_report(blocked: str = "https://evil.example/x.js?v=1",
               directive: str = "script-src-elem") -> bytes:
    return orjson.dumps({"csp-report": {
        "document-uri": "http://shop.example/checkout?step=2",
        "referrer": "",
        "violated-directive": directive,
        "effective-directive": directive,
        "original-policy": "default-src 'self'; report-uri /api/1/security/",
        "disposition": "enforce",
        "blocked-uri": blocked,
        "line-number": 12,
        "column-number": 3,
        "source-file": "http://shop.example/checkout",
        "status-code": 200,
        "script-sample": "",
    }})


def reporting_api(*blocked: str) -> bytes:
    return orjson.dumps([
        {"type": "csp-violation", "age": 10, "url": "http://shop.example/cart",
         "user_agent": UA, "body": {
             "documentURL": "http://shop.example/cart", "referrer": "",
             "blockedURL": b, "effectiveDirective": "img-src",
             "originalPolicy": "img-src 'self'; report-to csp", "sourceFile": None,
             "sample": "", "disposition": "enforce", "statusCode": 200,
             "lineNumber": 0, "columnNumber": 0}}
        for b in blocked
    ] + [{"type": "deprecation", "url": "http://shop.example/", "body": {"id": "x"}}])


@pytest.fixture
def tenant(tenant_factory):  # type: ignore[no-untyped-def]
    return tenant_factory("csp")


def post(client, tenant, body: bytes, content_type: str, key: str | None = None,  # type: ignore[no-untyped-def]
         **headers: str):
    return client.post(f"/api/{tenant.project_id}/security/?sentry_key={key or tenant.public_key}",
                       content=body, headers={"Content-Type": content_type, "User-Agent": UA,
                                              **headers})


def events(client, tenant) -> list[dict]:  # type: ignore[no-untyped-def]
    return client.app.state.runtime.store.rows(
        "SELECT title, culprit, platform, issue_id, tags, data FROM events "
        "WHERE project_id = {p:UInt64} ORDER BY title", {"p": tenant.project_id})


def test_csp_report_becomes_a_javascript_event_and_issue(client, tenant):
    r = post(client, tenant, csp_report(), "application/csp-report")
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    [row] = events(client, tenant)
    assert row["title"] == "Blocked 'script' from 'evil.example'"
    assert row["culprit"] == "script-src-elem"
    assert row["platform"] == "javascript"
    tags = dict(row["tags"])
    assert tags["effective-directive"] == "script-src-elem"
    assert tags["blocked-uri"] == "evil.example"
    assert tags["document-uri"] == "http://shop.example/checkout"
    assert tags["browser.name"] == "HeadlessChrome" and tags["os.name"] == "Linux"
    data = orjson.loads(row["data"])
    assert data["csp"]["blocked_uri"] == "https://evil.example/x.js?v=1"
    assert data["csp"]["line_number"] == "12"


def test_reporting_api_batch_groups_by_directive_and_host(client, tenant):
    body = reporting_api("https://ads.example/a.png", "https://ads.example/b.png",
                         "https://cdn.other.example/c.png")
    r = post(client, tenant, gzip.compress(body), "application/reports+json",
             **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    rows = events(client, tenant)
    assert [r["title"] for r in rows] == ["Blocked 'image' from 'ads.example'"] * 2 + [
        "Blocked 'image' from 'cdn.other.example'"]
    assert rows[0]["issue_id"] == rows[1]["issue_id"] != rows[2]["issue_id"]
    with client.app.state.runtime.db.session() as s:
        issues = s.scalars(select(Issue).where(Issue.project_id == tenant.project_id)).all()
        assert sorted(i.title for i in issues) == ["Blocked 'image' from 'ads.example'",
                                                   "Blocked 'image' from 'cdn.other.example'"]
        assert {i.culprit for i in issues} == {"img-src"}


def test_preflight_auth_and_bad_bodies(client, tenant):
    r = client.options(f"/api/{tenant.project_id}/security/?sentry_key=x",
                       headers={"Origin": "http://shop.example",
                                "Access-Control-Request-Method": "POST",
                                "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 200 and "content-type" in r.headers["access-control-allow-headers"]
    assert client.post(f"/api/{tenant.project_id}/security/", content=csp_report()).status_code == 401
    assert post(client, tenant, csp_report(), "application/csp-report", key="nope").status_code == 403
    for bad in (b"", b"{", b"[1, 2]", b'"x"', b'{"csp-report": {"document-uri": "x"}}',
                b'{"csp-report": 5}'):
        r = post(client, tenant, bad, "application/csp-report")
        assert r.status_code in (200, 400), (bad, r.status_code)
    assert post(client, tenant, b"[" + b" " * 2_000_000 + b"]",
                "application/reports+json").status_code == 413
    assert events(client, tenant) == []


def test_messages_follow_sentry_wording():
    assert blocked_display("https://user@evil.example:8443/x") == "evil.example:8443"
    assert blocked_display("data:image/png;base64,xx") == "data:"
    assert message("script-src-elem", "inline") == "Blocked unsafe inline 'script'"
    assert message("style-src-elem", "inline") == "Blocked inline 'style'"
    assert message("script-src", "eval") == "Blocked unsafe eval() 'script'"
    assert message("form-action", "evil.example") == "Blocked 'form' action to 'evil.example'"
    assert message("connect-src", "api.example") == "Blocked 'connect' from 'api.example'"


def test_browser_sdk_event_gets_browser_tags_from_user_agent(client, tenant):
    # What @sentry/browser 11 sends: no browser/os contexts, only the User-Agent header.
    event = {"event_id": "a" * 32, "platform": "javascript", "level": "error",
             "exception": {"values": [{"type": "TypeError", "value": "x is undefined"}]},
             "request": {"url": "http://shop.example/", "headers": {"User-Agent": UA}}}
    r = client.post(f"/api/{tenant.project_id}/store/?sentry_key={tenant.public_key}",
                    content=orjson.dumps(event))
    assert r.status_code == 200, r.text
    tags = dict(events(client, tenant)[0]["tags"])
    assert tags["browser.name"] == "HeadlessChrome" and tags["os.name"] == "Linux"
