"""The Sentry-compatible web API under /api/0: releases (as sentry-cli uses them), issues, events."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sentry_sdk
from sdk_capture import sdk

SENTRY_CLI = shutil.which("sentry-cli") or str(Path(sys.executable).parent / "sentry-cli")


def links(response: httpx.Response) -> dict[str, dict[str, str]]:
    """The Link header as {rel: {"url", "results", "cursor"}}."""
    out = {}
    for part in response.headers["link"].split(", <"):
        url = part.split(">", 1)[0].lstrip("<")
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', part))
        out[attrs["rel"]] = {"url": url, "results": attrs["results"], "cursor": attrs["cursor"]}
    return out


def send(client, tenant, envelopes: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/{tenant.project_id}/envelope/?sentry_key={tenant.public_key}"
    for e in envelopes:
        assert client.post(url, content=e).status_code == 200


def slug(client, tenant) -> str:  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/projects/{tenant.project_id}", headers=tenant.auth).json()["slug"]


# -- releases ----------------------------------------------------------------------------------


def test_release_lifecycle_as_documented(client, tenant_factory):
    t = tenant_factory("rel")
    project = slug(client, t)
    base = f"/api/0/organizations/{t.org}/releases/"
    r = client.post(base, headers=t.auth, json={
        "version": "backend@2.0.0+abc", "projects": [project], "ref": "6ba09a7c", "url": "https://x.io"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["version"] == "backend@2.0.0+abc" and body["dateReleased"] is None
    assert body["projects"][0]["slug"] == project and body["ref"] == "6ba09a7c"
    assert body["versionInfo"]["package"] == "backend" and body["versionInfo"]["buildHash"] == "abc"
    assert body["dateCreated"].endswith("Z")
    # Creating it again answers 208 with the same release, as Sentry does.
    again = client.post(base, headers=t.auth, json={"version": "backend@2.0.0+abc",
                                                    "projects": [project]})
    assert again.status_code == 208 and again.json()["id"] == body["id"]

    url = base + "backend@2.0.0+abc/"
    r = client.put(url, headers=t.auth, json={"dateReleased": "2026-01-02T03:04:05.123456789Z"})
    assert r.status_code == 200 and r.json()["dateReleased"] == "2026-01-02T03:04:05.123456Z"
    r = client.post(url + "deploys/", headers=t.auth, json={"environment": "production",
                                                           "name": "deploy 1"})
    assert r.status_code == 201 and r.json()["environment"] == "production"
    got = client.get(url, headers=t.auth).json()
    assert got["deployCount"] == 1 and got["lastDeploy"]["name"] == "deploy 1"
    assert [d["environment"] for d in client.get(url + "deploys/", headers=t.auth).json()] == [
        "production"]

    # Commits: --commit needs the repository to exist; --local sends the commits themselves.
    r = client.put(url, headers=t.auth, json={"refs": [{"repository": "acme/shop", "commit": "b" * 40}]})
    assert r.status_code == 400 and "unknown repository" in r.json()["detail"]
    assert client.post(f"/api/0/organizations/{t.org}/repos/", headers=t.auth,
                       json={"name": "acme/shop", "provider": "integrations:github"}).status_code == 201
    r = client.put(url, headers=t.auth, json={"refs": [
        {"repository": "acme/shop", "commit": "b" * 40, "previousCommit": "a" * 40}]})
    assert r.status_code == 200 and r.json()["commitCount"] == 1
    assert r.json()["lastCommit"]["repository"]["name"] == "acme/shop"
    r = client.put(url, headers=t.auth, json={"commits": [
        {"id": "c" * 40, "repository": "acme/shop", "message": "fix checkout",
         "author_name": "Ann", "author_email": "ann@x.io", "timestamp": "2026-01-01T00:00:00Z"},
        {"id": "d" * 40, "repository": "acme/shop", "message": "add cart",
         "author_name": "Bob", "author_email": "bob@x.io"}]})
    assert r.json()["commitCount"] == 2
    assert {a["email"] for a in r.json()["authors"]} == {"ann@x.io", "bob@x.io"}
    commits = client.get(url + "commits/", headers=t.auth).json()
    assert [c["message"] for c in commits] == ["fix checkout", "add cart"]
    assert commits[0]["author"] == {"name": "Ann", "email": "ann@x.io"}

    bad = client.post(base, headers=t.auth, json={"version": "a/b", "projects": [project]})
    assert bad.status_code == 400
    assert client.post(base, headers=t.auth, json={"version": "x"}).status_code == 400
    assert client.post(base, headers=t.auth, json={"version": "x", "projects": ["nope"]}).status_code == 404
    assert client.delete(url, headers=t.auth).status_code == 204
    assert client.get(url, headers=t.auth).status_code == 404


def test_releases_paginate_with_link_headers_and_carry_health(client, tenant_factory):
    t = tenant_factory("relpage")
    project = slug(client, t)
    with sdk(release="seen@1", environment="prod") as envelopes:
        sentry_sdk.start_session()
        sentry_sdk.end_session()
    send(client, t, envelopes)  # a release no one announced appears by itself
    for i in range(4):
        assert client.post(f"/api/0/organizations/{t.org}/releases/", headers=t.auth,
                           json={"version": f"v{i}", "projects": [project]}).status_code == 201
    url = f"/api/0/projects/{t.org}/{project}/releases/"
    first = client.get(url, headers=t.auth, params={"per_page": 2})
    assert [r["version"] for r in first.json()] == ["v3", "v2"]
    link = links(first)
    assert link["previous"]["results"] == "false" and link["next"]["results"] == "true"
    second = client.get(link["next"]["url"], headers=t.auth)
    assert [r["version"] for r in second.json()] == ["v1", "v0"]
    third = client.get(links(second)["next"]["url"], headers=t.auth)
    assert [r["version"] for r in third.json()] == ["seen@1"]
    assert links(third)["next"]["results"] == "false"
    assert links(third)["previous"]["results"] == "true"

    seen = client.get(f"/api/0/organizations/{t.org}/releases/seen@1/", headers=t.auth,
                      params={"health": 1}).json()
    health = seen["projects"][0]["healthData"]
    assert health["totalSessions"] == 1 and health["crashFreeSessions"] == 100.0
    found = client.get(f"/api/0/organizations/{t.org}/releases/", headers=t.auth,
                       params={"query": "seen"}).json()
    assert [r["version"] for r in found] == ["seen@1"]


def test_release_api_needs_a_token_and_membership(client, tenant_factory):
    t, other = tenant_factory("owner1"), tenant_factory("stranger")
    url = f"/api/0/organizations/{t.org}/releases/"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(url, headers=other.auth).status_code == 404
    assert client.post(url, headers=other.auth,
                       json={"version": "x", "projects": ["owner1-app"]}).status_code == 404
    viewer = tenant_factory("viewer1")
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.models import Organization, Role

    with client.app.state.runtime.db.session() as s:
        org = s.query(Organization).filter_by(slug=t.org).one()
        accounts.set_member(s, org, viewer.email, Role.viewer)
    assert client.get(url, headers=viewer.auth).status_code == 200
    assert client.post(url, headers=viewer.auth,
                       json={"version": "x", "projects": ["owner1-app"]}).status_code == 403


# -- issues and events -------------------------------------------------------------------------


def charge(order: int) -> None:
    raise ValueError(f"card declined for order {order}")


def lookup(key: str) -> None:
    {}[key]


def make_issues(client, tenant) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """Three issues: ValueError (3 events, 2 users), KeyError (1 event), a message."""
    with sdk(release="shop@1.0", environment="production") as envelopes:
        for order, user in ((1, "ann"), (2, "bob"), (3, "ann")):
            sentry_sdk.set_user({"id": user})
            try:
                charge(order)
            except ValueError:
                sentry_sdk.capture_exception()
        try:
            lookup("sku")
        except KeyError:
            sentry_sdk.capture_exception()
        sentry_sdk.capture_message("cache is cold", level="warning")
    send(client, tenant, envelopes)
    r = client.get(f"/api/0/projects/{tenant.org}/{slug(client, tenant)}/issues/",
                   headers=tenant.auth)
    assert r.status_code == 200, r.text
    return {i["metadata"].get("type") or i["title"]: i for i in r.json()}


def test_issue_list_has_sentrys_fields_and_search(client, tenant_factory):
    t = tenant_factory("issues")
    issues = make_issues(client, t)
    assert set(issues) == {"ValueError", "KeyError", "cache is cold"}
    value = issues["ValueError"]
    assert value["shortId"].startswith("ISSUES-APP-") and value["id"].isdigit()
    assert value["title"] == "ValueError: card declined for order 1"
    assert (value["count"], value["userCount"]) == ("3", 2)
    assert value["level"] == "error" and value["status"] == "unresolved"
    assert value["culprit"] and value["type"] == "error"
    assert value["metadata"]["value"] == "card declined for order 1"
    assert value["firstSeen"].endswith("Z") and value["lastSeen"] >= value["firstSeen"]
    assert value["project"] == {"id": str(t.project_id), "slug": "issues-app",
                                "name": "issues app", "platform": None}
    assert value["permalink"].endswith(f"/o/{t.org}/p/issues-app/issues/{value['shortId']}")
    assert len(value["stats"]["24h"]) == 24 and sum(n for _, n in value["stats"]["24h"]) == 3
    assert issues["cache is cold"]["level"] == "warning"
    assert issues["cache is cold"]["metadata"] == {"title": "cache is cold"}

    url = f"/api/0/projects/{t.org}/issues-app/issues/"
    found = client.get(url, headers=t.auth, params={"query": "is:unresolved error.type:KeyError"})
    assert [i["title"] for i in found.json()] == ["KeyError: 'sku'"]
    assert client.get(url, headers=t.auth, params={"query": "level:[warning"}).status_code in (
        200, 400)
    by_freq = client.get(url, headers=t.auth, params={"sort": "freq", "limit": 1})
    assert [i["metadata"].get("type") for i in by_freq.json()] == ["ValueError"]
    link = links(by_freq)
    assert link["next"]["results"] == "true" and link["previous"]["results"] == "false"
    rest = client.get(link["next"]["url"], headers=t.auth)
    assert len(rest.json()) == 1 and links(rest)["previous"]["results"] == "true"
    last = client.get(links(rest)["next"]["url"], headers=t.auth)
    assert len(last.json()) == 1 and links(last)["next"]["results"] == "false"
    ids = {i["id"] for i in by_freq.json() + rest.json() + last.json()}
    assert len(ids) == 3

    other = tenant_factory("nosy")
    assert client.get(url, headers=other.auth).status_code == 404
    assert client.get(f"/api/0/organizations/{other.org}/issues/{value['id']}/",
                      headers=other.auth).status_code == 404


def test_issue_status_changes(client, tenant_factory):
    t = tenant_factory("states")
    issues = make_issues(client, t)
    issue = issues["ValueError"]
    url = f"/api/0/organizations/{t.org}/issues/{issue['id']}/"
    listing = f"/api/0/projects/{t.org}/states-app/issues/"

    r = client.put(url, headers=t.auth, json={"status": "resolved"})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert issue["id"] not in {i["id"] for i in client.get(listing, headers=t.auth).json()}
    resolved = client.get(listing, headers=t.auth, params={"query": "is:resolved"}).json()
    assert [i["id"] for i in resolved] == [issue["id"]]

    r = client.put(url, headers=t.auth, json={"status": "resolved",
                                              "statusDetails": {"inNextRelease": True}})
    assert r.json()["statusDetails"] == {"inNextRelease": True, "inRelease": "shop@1.0"}
    r = client.put(url, headers=t.auth, json={"status": "resolvedInNextRelease"})
    assert r.json()["statusDetails"]["inNextRelease"] is True

    r = client.put(url, headers=t.auth, json={"status": "ignored",
                                              "statusDetails": {"ignoreDuration": 30}})
    assert r.json()["status"] == "ignored" and "ignoreUntil" in r.json()["statusDetails"]
    assert r.json()["substatus"] == "archived_until_condition_met"
    r = client.put(url, headers=t.auth, json={"status": "ignored",
                                              "statusDetails": {"ignoreCount": 100}})
    assert r.json()["statusDetails"] == {"ignoreCount": 100}
    r = client.put(url, headers=t.auth, json={"status": "unresolved"})
    assert (r.json()["status"], r.json()["statusDetails"]) == ("unresolved", {})
    assert r.json()["count"] == "3"

    legacy = f"/api/0/issues/{issue['id']}/"
    assert client.put(legacy, headers=t.auth, json={"status": "resolved"}).json()["status"] == (
        "resolved")
    assert client.get(legacy, headers=t.auth).json()["shortId"] == issue["shortId"]
    assert client.put(legacy, headers=t.auth, json={"status": "unresolved"}).status_code == 200
    assert client.put(url, headers=t.auth, json={"status": "gone"}).status_code == 400
    assert client.put(url, headers=t.auth, json={"status": "ignored", "statusDetails": {
        "ignoreCount": -1}}).status_code == 400
    # Issues without a release cannot be resolved "in the next release".
    with sdk(release="") as envelopes:  # "" keeps the SDK from using the git commit
        sentry_sdk.capture_message("no release here")
    send(client, t, envelopes)
    [bare] = [i for i in client.get(listing, headers=t.auth).json()
              if i["title"] == "no release here"]
    r = client.put(f"/api/0/organizations/{t.org}/issues/{bare['id']}/", headers=t.auth,
                   json={"status": "resolvedInNextRelease"})
    assert r.status_code == 400

    both = [issues["KeyError"]["id"], issues["cache is cold"]["id"]]
    r = client.put(listing, headers=t.auth, params=[("id", i) for i in both],
                   json={"status": "resolved"})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    left = {i["id"] for i in client.get(listing, headers=t.auth).json()}
    assert not left & set(both)

    viewer = tenant_factory("watcher")
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.models import Organization, Role

    with client.app.state.runtime.db.session() as s:
        org = s.query(Organization).filter_by(slug=t.org).one()
        accounts.set_member(s, org, viewer.email, Role.viewer)
    assert client.get(url, headers=viewer.auth).status_code == 200
    assert client.put(url, headers=viewer.auth, json={"status": "resolved"}).status_code == 403
    assert client.put(f"/api/0/issues/{issue['id']}/", headers=viewer.auth,
                      json={"status": "resolved"}).status_code == 403
    stranger = tenant_factory("stranger2")
    assert client.get(f"/api/0/issues/{issue['id']}/", headers=stranger.auth).status_code == 404


def test_issue_events_paginate_both_ways_and_event_detail(client, tenant_factory):
    t = tenant_factory("events")
    with sdk(release="shop@2.0", environment="production") as envelopes:
        sentry_sdk.set_user({"id": "ann", "email": "ann@example.com"})
        sentry_sdk.set_tag("checkout", "v2")
        sentry_sdk.add_breadcrumb(category="cart", message="added sku 7")
        for order in range(5):
            try:
                charge(order)
            except ValueError:
                sentry_sdk.capture_exception()
    send(client, t, envelopes)
    [issue] = client.get(f"/api/0/projects/{t.org}/events-app/issues/", headers=t.auth).json()
    url = f"/api/0/organizations/{t.org}/issues/{issue['id']}/events/"
    pages, r = [], client.get(url, headers=t.auth, params={"per_page": 2})
    while True:
        assert r.status_code == 200, r.text
        pages.append([e["eventID"] for e in r.json()])
        if links(r)["next"]["results"] == "false":
            break
        r = client.get(links(r)["next"]["url"], headers=t.auth)
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [e for p in pages for e in p]
    assert len(set(flat)) == 5
    back = client.get(links(r)["previous"]["url"], headers=t.auth)
    assert [e["eventID"] for e in back.json()] == pages[1]
    first = client.get(links(back)["previous"]["url"], headers=t.auth)
    assert [e["eventID"] for e in first.json()] == pages[0]
    assert links(first)["previous"]["results"] == "false"

    summary = client.get(url, headers=t.auth, params={"per_page": 1}).json()[0]
    assert summary["groupID"] == issue["id"] and summary["projectID"] == str(t.project_id)
    assert summary["dateCreated"].endswith("Z") and summary["title"].startswith("ValueError")
    assert {"key": "checkout", "value": "v2"} in summary["tags"]
    assert summary["user"]["id"] == "ann"
    full = client.get(url, headers=t.auth, params={"per_page": 1, "full": "true"}).json()[0]
    assert {e["type"] for e in full["entries"]} >= {"exception", "breadcrumbs"}

    event_id = flat[2]
    dashed = f"{event_id[:8]}-{event_id[8:12]}-{event_id[12:16]}-{event_id[16:20]}-{event_id[20:]}"
    detail = client.get(f"/api/0/projects/{t.org}/events-app/events/{dashed}/", headers=t.auth)
    assert detail.status_code == 200
    d = detail.json()
    assert (d["eventID"], d["groupID"], d["release"]["version"]) == (event_id, issue["id"], "shop@2.0")
    [exc] = [e for e in d["entries"] if e["type"] == "exception"]
    value = exc["data"]["values"][-1]
    assert value["type"] == "ValueError" and value["stacktrace"]["frames"][-1]["function"] == "charge"
    assert d["previousEventID"] == flat[3] and d["nextEventID"] == flat[1]
    assert d["environment"] == "production" and d["contexts"] is not None
    missing = client.get(f"/api/0/projects/{t.org}/events-app/events/{'0' * 32}/", headers=t.auth)
    assert missing.status_code == 404
    other = tenant_factory("peeker")
    assert client.get(url, headers=other.auth).status_code == 404
    assert client.get(f"/api/0/projects/{t.org}/events-app/events/{event_id}/",
                      headers=other.auth).status_code == 404


@pytest.mark.skipif(not Path(SENTRY_CLI).exists(), reason="sentry-cli is not installed")
def test_sentry_cli_releases_against_a_live_server(server_factory, settings, tmp_path):
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.db import Database
    from spyglass.kernel.meta.models import Role

    db = Database(settings.metadata_url)
    db.migrate()
    with db.session() as s:
        accounts.create_user(s, "cli@example.com", "correct horse battery")
        org = accounts.get_or_create_org(s, "org-cli")
        accounts.set_member(s, org, "cli@example.com", Role.owner)
        accounts.create_project(s, org, "cli app")
        user = accounts.user_by_email(s, "cli@example.com")
        token, org_slug = accounts.create_api_token(s, user, "cli").token, org.slug
    db.close()
    server = server_factory()
    env = {**os.environ, "SENTRY_URL": server.url, "SENTRY_AUTH_TOKEN": token,
           "SENTRY_ORG": org_slug, "SENTRY_PROJECT": "cli-app", "SENTRY_LOG_LEVEL": "warn"}

    def cli(*args: str) -> str:
        done = subprocess.run([SENTRY_CLI, *args], check=False, env=env, capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    auth = {"Authorization": f"Bearer {token}"}
    assert "Created release 2.1.0" in cli("releases", "new", "2.1.0")
    httpx.post(f"{server.url}/api/0/organizations/{org_slug}/repos/", headers=auth,
               json={"name": "acme/shop"}).raise_for_status()
    out = cli("releases", "set-commits", "2.1.0", "--commit", "acme/shop@" + "a" * 40)
    assert "acme/shop" in out
    assert "Finalized release 2.1.0" in cli("releases", "finalize", "2.1.0")
    # --local reads the commits of the git checkout it runs in and sends them.
    git = ["git", "-c", "user.name=Ann", "-c", "user.email=ann@example.com"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin",
                    "https://github.com/acme/shop.git"], check=True)
    for message in ("add cart", "fix checkout"):
        subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", message],
                       check=True)
    cli("releases", "new", "2.2.0")
    # The previous release's head (aaaa…) is not in this history: sentry-cli found it through
    # previous-with-commits and, told to, starts from scratch as it would against Sentry.
    cli("releases", "set-commits", "2.2.0", "--local", "--ignore-missing")
    commits = httpx.get(f"{server.url}/api/0/organizations/{org_slug}/releases/2.2.0/commits/",
                        headers=auth).json()
    assert [c["message"].strip() for c in commits] == ["fix checkout", "add cart"]
    assert commits[0]["author"] == {"name": "Ann", "email": "ann@example.com"}
    cli("releases", "deploys", "2.1.0", "new", "-e", "production")
    assert "2.1.0" in cli("releases", "list")
    assert "2.1.0" in cli("releases", "info", "2.1.0")
    release = httpx.get(f"{server.url}/api/0/organizations/{org_slug}/releases/2.1.0/",
                        headers=auth).json()
    assert release["dateReleased"] is not None and release["deployCount"] == 1
    assert release["lastCommit"]["id"] == "a" * 40
    assert [p["slug"] for p in release["projects"]] == ["cli-app"]
