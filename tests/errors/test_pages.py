"""The issues pages over HTTP: content, actions, roles, CSRF and tenant isolation."""

from __future__ import annotations

import re

import pytest
import sentry_sdk
from sdk_capture import sdk
from sqlalchemy import select

from spyglass.errors.models import ErrorSettings, Issue
from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.models import Role

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client, email: str) -> str:  # type: ignore[no-untyped-def]
    client.cookies.clear()
    r = client.post("/login", data={"email": email, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return CSRF.search(client.get("/settings/tokens").text).group(1)


def add_member(client, email: str, org_slug: str, role: Role) -> None:  # type: ignore[no-untyped-def]
    with client.app.state.runtime.db.session() as s:
        accounts.create_user(s, email, PASSWORD)
        org = accounts.get_or_create_org(s, org_slug)
        accounts.set_member(s, org, email, role)
        s.commit()


def checkout(order_id: int) -> None:
    basket = {"sku": "A-1", "qty": 2}  # noqa: F841 - a local variable the SDK sends
    raise ValueError(f"card declined for order {order_id}")


def lookup(sku: str) -> None:
    {}[sku]


@pytest.fixture
def site(client, tenant_factory):  # type: ignore[no-untyped-def]
    """An owner with a project holding three issues, one with an attachment and feedback."""
    t = tenant_factory("web")
    with sdk(release="web@1.0", environment="production") as envelopes:
        for n, user in enumerate(["ann", "bob"]):
            sentry_sdk.set_user({"id": user, "email": f"{user}@example.com"})
            sentry_sdk.set_tag("customer", "<b>acme</b>")
            sentry_sdk.add_breadcrumb(category="ui.click", message="button#pay", level="info")
            try:
                checkout(100 + n)
            except ValueError:
                sentry_sdk.capture_exception()
        try:
            lookup("<script>alert(1)</script>")
        except KeyError:
            with sentry_sdk.new_scope() as scope:
                scope.add_attachment(bytes=b"<html>evil</html>", filename="page.html",
                                     content_type="text/html")
                sentry_sdk.capture_exception()
        sentry_sdk.capture_message("cache warmed in 12 ms", level="info")
    url = f"/api/{t.project_id}/envelope/?sentry_key={t.public_key}"
    for e in envelopes:
        assert client.post(url, content=e).status_code == 200
    with client.app.state.runtime.db.session() as s:
        project = accounts.projects_of(s, accounts.get_or_create_org(s, t.org))[0]
        t.base = f"/o/{t.org}/p/{project.slug}"  # type: ignore[attr-defined]
        t.prefix = project.slug.upper()  # type: ignore[attr-defined]
    t.csrf = login(client, t.email)  # type: ignore[attr-defined]
    return t


def issue_id(client, t, number: int) -> int:  # type: ignore[no-untyped-def]
    with client.app.state.runtime.db.session() as s:
        return s.scalar(select(Issue.id).where(Issue.project_id == t.project_id,
                                               Issue.short_id == number))


def status_of(client, t, number: int) -> tuple[str, int | None]:  # type: ignore[no-untyped-def]
    with client.app.state.runtime.db.session() as s:
        i = s.scalar(select(Issue).where(Issue.project_id == t.project_id, Issue.short_id == number))
        return i.status, i.merged_into_id


def test_issues_list_search_tabs_and_escaping(client, site):
    r = client.get(f"{site.base}/issues")
    assert r.status_code == 200
    html = r.text
    for text in ("card declined for order 100", f"{site.prefix}-1", f"{site.prefix}-2",
                 "cache warmed in 12 ms", 'class="spark"', "Unresolved", "/assets/errors/errors.css"):
        assert text in html, text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Search narrows the list; the status tabs keep the search.
    r = client.get(f"{site.base}/issues", params={"q": "is:unresolved user:ann"})
    assert "card declined" in r.text and "cache warmed" not in r.text
    assert "is%3Aresolved+user%3Aann" in r.text
    r = client.get(f"{site.base}/issues", params={"q": "level:info", "period": "24h",
                                                  "sort": "events"})
    assert "cache warmed" in r.text and "card declined" not in r.text
    r = client.get(f"{site.base}/issues", params={"q": "firstSeen:nonsense"})
    assert r.status_code == 200 and "not a time" in r.text
    r = client.get(f"{site.base}/issues", params={"q": "is:resolved"})
    assert "No issues match your filters" in r.text
    # A short id jumps to the issue.
    r = client.get(f"{site.base}/issues", params={"q": f"{site.prefix}-2"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith(f"/issues/{site.prefix}-2")
    # The tags of events are searchable from the list.
    r = client.get(f"{site.base}/issues", params={"q": 'customer:"<b>acme</b>"'})
    assert "card declined" in r.text and "<b>acme</b>" not in r.text


def test_empty_project_explains_how_to_send_the_first_event(client, tenant_factory):
    t = tenant_factory("fresh")
    login(client, t.email)
    with client.app.state.runtime.db.session() as s:
        slug = accounts.projects_of(s, accounts.get_or_create_org(s, t.org))[0].slug
    r = client.get(f"/o/{t.org}/p/{slug}/issues")
    assert r.status_code == 200
    assert "Send your first event" in r.text and t.public_key in r.text
    assert "sentry_sdk.init(dsn=" in r.text


def test_issue_event_and_tabs(client, site):
    base, p = site.base, site.prefix
    r = client.get(f"{base}/issues/{p}-1")
    assert r.status_code == 200
    html = r.text
    for text in ("ValueError", "card declined for order", "checkout", "Local variables", "basket",
                 "ui.click", "button#pay", "web@1.0", "Why grouped", "app-stacktrace",
                 "customer", "In app", "sentry.python", "Oldest", "Latest", "trace"):
        assert text in html, text
    assert "<b>acme</b>" not in html and "&lt;b&gt;acme&lt;/b&gt;" in html
    events = client.get(f"{base}/issues/{p}-1/events")
    assert events.status_code == 200 and events.text.count("/events/") >= 2
    ids = re.findall(rf"{base}/issues/{p}-1/events/([0-9a-f]{{32}})", events.text)
    assert len(set(ids)) == 2
    r = client.get(f"{base}/issues/{p}-1/events/{ids[-1]}")
    assert r.status_code == 200 and "card declined for order 100" in r.text
    assert client.get(f"{base}/issues/{p}-1/events/latest").status_code == 200
    j = client.get(f"{base}/issues/{p}-1/events/{ids[0]}/json")
    assert j.status_code == 200 and j.json()["event_id"] == ids[0]
    # An event asked for under another issue goes to the issue that holds it.
    r = client.get(f"{base}/issues/{p}-2/events/{ids[0]}", follow_redirects=False)
    assert r.status_code == 303 and f"/issues/{p}-1/events/{ids[0]}" in r.headers["location"]
    assert client.get(f"{base}/issues/{p}-1/events/{'0' * 32}").status_code == 404
    assert client.get(f"{base}/issues/{p}-99").status_code == 404
    assert client.get(f"{base}/issues/{p}-1/nope").status_code == 404
    for tab in ("similar", "merged", "feedback"):
        assert client.get(f"{base}/issues/{p}-1/{tab}").status_code == 200, tab
    assert "Merge into" in client.get(f"{base}/issues/{p}-1/similar").text


def test_attachment_download_is_a_download_of_this_project_only(client, site, tenant_factory):
    base, p = site.base, site.prefix
    html = client.get(f"{base}/issues/{p}-2").text
    assert "page.html" in html
    href = re.search(r'href="([^"]+/attachments/[0-9a-f]+)"', html).group(1)
    r = client.get(href)
    assert r.status_code == 200 and r.content == b"<html>evil</html>"
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"
    # The same attachment id through another issue's URL is not found.
    assert client.get(href.replace(f"/{p}-2/", f"/{p}-1/")).status_code == 404
    # Another tenant cannot reach it through their own project either.
    other = tenant_factory("other")
    login(client, other.email)
    with client.app.state.runtime.db.session() as s:
        slug = accounts.projects_of(s, accounts.get_or_create_org(s, other.org))[0].slug
    assert client.get(href.replace(base, f"/o/{other.org}/p/{slug}")).status_code == 404
    assert client.get(href).status_code == 404  # not a member of the first org


def test_status_changes_bulk_actions_merge_and_unmerge(client, site):
    base, p, csrf = site.base, site.prefix, site.csrf
    r = client.post(f"{base}/issues/{p}-1/status", data={"action": "resolve", "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303 and "done=resolve" in r.headers["location"]
    assert status_of(client, site, 1)[0] == "resolved"
    page = client.get(r.headers["location"]).text
    assert "Resolved." in page and "Unresolve" in page
    client.post(f"{base}/issues/{p}-1/status", data={"action": "unresolve", "csrf_token": csrf})
    assert status_of(client, site, 1)[0] == "unresolved"
    # Resolve in next release, and the error when there is no release does not apply here.
    client.post(f"{base}/issues/{p}-1/status", data={"action": "resolve_next", "csrf_token": csrf})
    assert status_of(client, site, 1)[0] == "resolved"

    # Bulk: ignore two issues for an hour (an HTMX request gets the list back).
    ids = [issue_id(client, site, 2), issue_id(client, site, 3)]
    back = f"{base}/issues?q=is%3Aunresolved"
    r = client.post(f"{base}/issues/bulk", data={"action": "ignore_1h", "issue": ids, "back": back,
                                                 "csrf_token": csrf},
                    headers={"HX-Request": "true"})
    assert r.status_code == 200 and "Ignored for 1 hour." in r.text
    assert status_of(client, site, 2)[0] == status_of(client, site, 3)[0] == "ignored"
    r = client.post(f"{base}/issues/bulk", data={"action": "unresolve", "issue": ids,
                                                 "back": "https://evil.example/", "csrf_token": csrf},
                    follow_redirects=False)
    assert r.headers["location"].startswith(f"{base}/issues?")
    r = client.post(f"{base}/issues/bulk", data={"action": "resolve", "csrf_token": csrf,
                                                 "back": back})
    assert "Select at least one issue first." in r.text
    r = client.post(f"{base}/issues/bulk", data={"action": "merge", "issue": ids[:1],
                                                 "csrf_token": csrf, "back": back})
    assert "Select at least two issues to merge." in r.text

    # Merge from the similar issues tab, then split the fingerprint out again.
    r = client.post(f"{base}/issues/{p}-2/merge", data={"other": f"{p}-3", "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    assert status_of(client, site, 3) == ("resolved", ids[0])
    assert client.get(f"{base}/issues/{p}-3", follow_redirects=False).headers["location"].endswith(
        f"/issues/{p}-2")
    merged = client.get(f"{base}/issues/{p}-2/merged").text
    hashes = re.findall(r'name="hash" value="([0-9a-f]+)"', merged)
    assert len(hashes) == 2
    r = client.post(f"{base}/issues/{p}-2/unmerge", data={"hash": hashes[1], "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303 and f"into={p}-4" in r.headers["location"]
    assert f"{p}-4" in client.get(r.headers["location"]).text
    r = client.post(f"{base}/issues/{p}-2/unmerge", data={"hash": hashes[0], "csrf_token": csrf},
                    follow_redirects=False)
    assert "error=only-hash" in r.headers["location"]

    # Bulk merge: the issue with the most events absorbs the other.
    r = client.post(f"{base}/issues/bulk", data={"action": "merge", "csrf_token": csrf,
                                                 "issue": [issue_id(client, site, 1),
                                                           issue_id(client, site, 2)],
                                                 "back": back}, follow_redirects=False)
    assert f"into={p}-1" in r.headers["location"]
    assert status_of(client, site, 2)[1] == issue_id(client, site, 1)


def test_csrf_roles_and_other_orgs(client, site):
    base, p = site.base, site.prefix
    r = client.post(f"{base}/issues/{p}-1/status", data={"action": "resolve"})
    assert r.status_code == 403
    r = client.post(f"{base}/issues/bulk", data={"action": "resolve", "issue": ["1"]})
    assert r.status_code == 403
    r = client.post(f"{base}/settings/errors", data={"fingerprint_rules": ""})
    assert r.status_code == 403

    add_member(client, "viewer@example.com", site.org, Role.viewer)
    csrf = login(client, "viewer@example.com")
    page = client.get(f"{base}/issues/{p}-1")
    assert page.status_code == 200 and "Read only" in page.text
    assert 'value="resolve"' not in page.text
    assert client.post(f"{base}/issues/{p}-1/status",
                       data={"action": "resolve", "csrf_token": csrf}).status_code == 403
    assert client.post(f"{base}/issues/bulk", data={"action": "resolve", "issue": ["1"],
                                                    "csrf_token": csrf}).status_code == 403
    assert client.get(f"{base}/settings/errors").status_code == 200
    assert client.post(f"{base}/settings/errors", data={"csrf_token": csrf}).status_code == 403

    add_member(client, "member@example.com", site.org, Role.member)
    csrf = login(client, "member@example.com")
    assert client.post(f"{base}/issues/{p}-1/status", data={"action": "ignore", "csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    assert status_of(client, site, 1)[0] == "ignored"
    assert client.post(f"{base}/settings/errors", data={"csrf_token": csrf}).status_code == 403

    add_member(client, "stranger@example.com", "elsewhere", Role.owner)
    csrf = login(client, "stranger@example.com")
    for path in ("/issues", f"/issues/{p}-1", f"/issues/{p}-1/events", f"/issues/{p}-1/events/latest",
                 f"/issues/{p}-1/events/latest/json", "/settings/errors"):
        assert client.get(base + path).status_code == 404, path
    assert client.post(f"{base}/issues/{p}-1/status",
                       data={"action": "resolve", "csrf_token": csrf}).status_code == 404
    assert client.post(f"{base}/settings/errors", data={"csrf_token": csrf}).status_code == 404


def test_error_settings_validate_rules_and_save(client, site):
    base, csrf = site.base, site.csrf
    r = client.get(f"{base}/settings/errors")
    assert r.status_code == 200 and "Fingerprint rules" in r.text and "Dropped events" in r.text
    assert "No client reports" in r.text
    bad = {"csrf_token": csrf, "fingerprint_rules": "error.type:Foo -> ok\nthis is not a rule",
           "stacktrace_rules": "", "rate_limit_per_minute": "12", "rate_limit_burst": "-3"}
    r = client.post(f"{base}/settings/errors", data=bad)
    assert r.status_code == 400
    assert "Line 2:" in r.text and "this is not a rule" in r.text
    assert "A whole number from 0" in r.text
    with client.app.state.runtime.db.session() as s:
        assert s.get(ErrorSettings, site.project_id) is None
    good = {"csrf_token": csrf, "fingerprint_rules": "error.type:ValueError -> payments",
            "stacktrace_rules": "stack.module:vendor.* -app", "sensitive_fields": "iban",
            "safe_fields": "", "scrub_ip_addresses": "1", "rate_limit_per_minute": "600",
            "rate_limit_burst": "100", "spike_protection": "1", "apdex_threshold_ms": "120"}
    r = client.post(f"{base}/settings/errors", data=good, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=settings-saved")
    with client.app.state.runtime.db.session() as s:
        saved = s.get(ErrorSettings, site.project_id)
        assert saved.rate_limit_per_minute == 600 and saved.spike_protection
        assert saved.scrub_ip_addresses and not saved.similarity_merge
        assert saved.fingerprint_rules == "error.type:ValueError -> payments"
        assert saved.apdex_threshold_ms == 120
    # The Performance pages read the saved Apdex threshold; the settings tab is drawn.
    perf = client.get(f"/api/v1/projects/{site.project_id}/transactions").json()
    assert perf["apdex_threshold_ms"] == 120
    assert f'href="{base}/settings/errors"' in client.get(f"{base}/settings").text
    cfg = client.app.state.errors.processor.config(site.project_id)
    assert cfg.rate_limit_per_minute == 600 and len(cfg.items.grouping.fingerprint_rules) == 1
    page = client.get(r.headers["location"]).text
    assert "Error settings saved." in page and "stack.module:vendor.* -app" in page
