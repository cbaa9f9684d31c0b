"""Releases and release health from sessions the real sentry-sdk sends, in both session modes."""

from __future__ import annotations

import datetime as dt

import httpx
import orjson
import pytest
import sentry_sdk
from chromium_page import SCREENSHOTS, chromium_page, needs_chromium, sign_in
from sdk_capture import sdk
from sentry_sdk.sessions import track_session
from sentry_sdk.utils import event_from_exception

from spyglass.errors.releases import health


def send(client, tenant, envelopes: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/{tenant.project_id}/envelope/?sentry_key={tenant.public_key}"
    for e in envelopes:
        assert client.post(url, content=e).status_code == 200


def crash(message: str) -> None:
    """Report an unhandled exception, as the SDK's excepthook integration does."""
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        event, hint = event_from_exception(exc, client_options=sentry_sdk.get_client().options,
                                           mechanism={"type": "excepthook", "handled": False})
        sentry_sdk.capture_event(event, hint=hint)


def handled(message: str) -> None:
    try:
        raise ValueError(message)
    except ValueError:
        sentry_sdk.capture_exception()


def app_session(user: str, outcome: str = "ok") -> None:
    """One application-mode session (a ``session`` item per session) of ``user``."""
    sentry_sdk.set_user({"id": user})
    sentry_sdk.start_session()
    if outcome == "errored":
        handled(f"bad input from {user}")
    elif outcome == "crashed":
        crash("worker died")
    sentry_sdk.end_session()


def by_version(client, tenant, **params) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/projects/{tenant.project_id}/releases", headers=tenant.auth,
                   params=params)
    assert r.status_code == 200, r.text
    return {row["version"]: row for row in r.json()}


def test_health_of_individual_sessions(client, tenant_factory):
    t = tenant_factory("apphealth")
    with sdk(release="shop@1.0", environment="production") as envelopes:
        app_session("ann")
        app_session("bob", "errored")
        app_session("cid", "crashed")
        app_session("dan")
        app_session("dan")
    with sdk(release="shop@1.0", environment="staging") as more:
        app_session("eve")
    with sdk(release="shop@1.1", environment="production") as newer:
        app_session("ann", "crashed")
    send(client, t, envelopes + more + newer)

    releases = by_version(client, t)
    assert list(releases) == ["shop@1.1", "shop@1.0"]  # newest first
    old, new = releases["shop@1.0"], releases["shop@1.1"]
    assert (old["sessions"], old["sessions_crashed"], old["sessions_errored"]) == (6, 1, 1)
    assert old["users"] == 5
    assert old["crash_free_sessions"] == pytest.approx(100 * 5 / 6, abs=1e-3)
    assert old["crash_free_users"] == pytest.approx(80.0)
    assert (new["sessions"], new["crash_free_sessions"], new["crash_free_users"]) == (1, 0.0, 0.0)
    # The errored and crashed sessions' exceptions became issues, first seen in their release.
    assert old["new_issues"] == 2 and new["new_issues"] == 0
    assert old["adoption"] == pytest.approx(100 * 6 / 7, abs=1e-3)
    assert new["adoption"] == pytest.approx(100 * 1 / 7, abs=1e-3)

    staging = by_version(client, t, environment="staging")
    assert staging["shop@1.0"]["sessions"] == 1
    assert staging["shop@1.0"]["crash_free_sessions"] == 100.0
    assert staging["shop@1.0"]["adoption"] == 100.0
    assert staging["shop@1.1"]["sessions"] == 0
    assert staging["shop@1.1"]["crash_free_sessions"] is None


def test_session_updates_count_once_with_their_worst_state(client, tenant_factory):
    """SDKs that send an update per change (JavaScript, mobile): one session, its last state."""
    t = tenant_factory("updates")

    def update(sid: str, seq: int, status: str, init: bool, errors: int = 0) -> bytes:
        body = {"sid": sid, "did": "user-" + sid, "seq": seq, "init": init, "status": status,
                "errors": errors, "started": "2026-01-05T10:00:00Z",
                "attrs": {"release": "web@2", "environment": "prod"}}
        return b'{}\n{"type":"session"}\n' + orjson.dumps(body) + b"\n"

    send(client, t, [
        update("a", 1, "ok", True), update("a", 2, "ok", False, errors=1),
        update("a", 3, "exited", False, errors=1),
        update("b", 1, "ok", True), update("b", 2, "crashed", False, errors=1),
        update("c", 1, "ok", True), update("c", 2, "exited", False),
        update("d", 1, "ok", True), update("d", 2, "abnormal", False),
    ])
    [h] = health(client.app.state.runtime.store, t.project_id)
    assert (h.sessions, h.crashed, h.errored, h.abnormal, h.healthy) == (4, 1, 1, 1, 1)
    assert (h.users, h.crashed_users) == (4, 1)
    assert h.crash_free_sessions == 75.0 and h.crash_free_users == 75.0


def test_health_of_aggregated_sessions_in_request_mode(client, tenant_factory):
    t = tenant_factory("reqhealth")
    with sdk(release="api@3.2", environment="production") as envelopes:
        for i in range(8):
            with sentry_sdk.isolation_scope() as scope, track_session(scope, session_mode="request"):
                if i == 2:
                    handled("bad request body")
                elif i in (5, 6):
                    crash("handler crashed")
    # Request mode sends pre-aggregated counts, not one item per session.
    assert any(b'"aggregates"' in e for e in envelopes)
    assert not any(b'"sid"' in e for e in envelopes)
    send(client, t, envelopes)

    row = by_version(client, t)["api@3.2"]
    assert (row["sessions"], row["sessions_crashed"], row["sessions_errored"]) == (8, 2, 1)
    assert row["crash_free_sessions"] == 75.0
    # Aggregates carry no user, so crash-free users is unknown rather than 100%.
    assert row["users"] == 0 and row["crash_free_users"] is None
    assert row["adoption"] == 100.0


def test_health_over_time_and_per_environment(client, tenant_factory):
    t = tenant_factory("series")

    def agg(started: str, env: str, exited: int, crashed: int) -> bytes:
        body = {"attrs": {"release": "m@1", "environment": env},
                "aggregates": [{"started": started, "exited": exited, "crashed": crashed}]}
        return b'{}\n{"type":"sessions"}\n' + orjson.dumps(body) + b"\n"

    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hour_ago, two_ago = (now - dt.timedelta(hours=h) for h in (1, 2))
    send(client, t, [agg(two_ago.isoformat(), "prod", 9, 1), agg(hour_ago.isoformat(), "prod", 4, 0),
                     agg(hour_ago.isoformat(), "beta", 1, 1)])
    store = client.app.state.runtime.store
    series = health(store, t.project_id, (), release="m@1", since=now - dt.timedelta(hours=3),
                    bucket_s=3600)
    got = {h.key["bucket"]: (h.sessions, h.crashed) for h in series}
    assert got == {int(two_ago.timestamp()): (10, 1), int(hour_ago.timestamp()): (6, 1)}
    per_env = {h.key["environment"]: h.crash_free_sessions
               for h in health(store, t.project_id, ("environment",), release="m@1")}
    assert per_env == {"prod": pytest.approx(100 * 13 / 14, abs=1e-3), "beta": 50.0}


def test_release_pages(client, tenant_factory):
    t = tenant_factory("relpages")
    with sdk(release="shop@7.0", environment="production") as envelopes:
        app_session("ann")
        app_session("bob", "crashed")
    send(client, t, envelopes)
    login = client.post("/login", data={"email": t.email, "password": t.password},
                        follow_redirects=False)
    assert login.status_code == 303
    base = f"/o/{t.org}/p/relpages-app"
    page = client.get(f"{base}/releases")
    assert page.status_code == 200
    assert 'data-version="shop@7.0"' in page.text
    assert "50%" in page.text and "health-bad" in page.text
    detail = client.get(f"{base}/releases/shop@7.0?environment=production")
    assert detail.status_code == 200
    assert "RuntimeError: worker died" in detail.text
    assert f'href="{base}/issues/RELPAGES-APP-1"' in detail.text
    assert 'id="health-series"' in detail.text and "uPlot" in detail.text
    assert client.get(f"{base}/releases/nope").status_code == 404
    # Another tenant sees neither the list nor the release.
    other = tenant_factory("intruder")
    client.cookies.clear()
    client.post("/login", data={"email": other.email, "password": other.password})
    assert client.get(f"{base}/releases").status_code == 404
    r = client.get(f"/api/v1/projects/{t.project_id}/releases", headers=other.auth)
    assert r.status_code == 404


def test_releases_endpoint_is_documented(client):
    schema = client.get("/api/openapi.json").json()
    op = schema["paths"]["/api/v1/projects/{project_id}/releases"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"]
    props = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert {"version", "sessions", "crash_free_sessions", "crash_free_users"} <= set(props)




@pytest.mark.browser
@needs_chromium
def test_release_pages_in_a_browser(server_factory, settings):
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.db import Database
    from spyglass.kernel.meta.models import Role

    db = Database(settings.metadata_url)
    db.migrate()
    with db.session() as s:
        accounts.create_user(s, "rel@example.com", "correct horse battery")
        org = accounts.get_or_create_org(s, "Acme")
        accounts.set_member(s, org, "rel@example.com", Role.owner)
        project = accounts.create_project(s, org, "Shop")
        pid, key = project.id, accounts.active_key(s, project).public_key
    db.close()
    server = server_factory()
    with sdk(release="shop@9.1", environment="production") as envelopes:
        app_session("ann")
        app_session("bob", "crashed")
        app_session("cid", "errored")
    for e in envelopes:
        httpx.post(f"{server.url}/api/{pid}/envelope/?sentry_key={key}",
                   content=e).raise_for_status()
    with chromium_page(1360, 900) as (page, problems):
        sign_in(page, f"{server.url}/o/acme/p/shop/releases", "rel@example.com",
                "correct horse battery")
        page.wait_for_selector("#releases")
        row = page.locator('tr[data-version="shop@9.1"]')
        assert row.locator('[data-metric="crash-free-sessions"]').inner_text() == "66.66%"
        assert row.locator('[data-metric="crash-free-users"]').inner_text() == "66.66%"
        page.screenshot(path=str(SCREENSHOTS / "releases-list.png"), full_page=True)
        row.locator("a.version").click()
        page.wait_for_selector("#health-chart .uplot")
        assert "RuntimeError: worker died" in page.locator("#new-issues").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "release-detail.png"), full_page=True)
    assert problems == []
