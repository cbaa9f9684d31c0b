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
from sdk_capture import sdk

import sentry_sdk

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


@pytest.mark.skipif(not Path(SENTRY_CLI).exists(), reason="sentry-cli is not installed")
def test_sentry_cli_releases_against_a_live_server(server_factory, settings, tmp_path):
    from conftest import make_tenant

    from spyglass.kernel.meta.db import Database

    db = Database(settings.metadata_url)
    db.migrate()
    tenant = make_tenant(db, "cli")
    db.close()
    server = server_factory()
    env = {**os.environ, "SENTRY_URL": server.url, "SENTRY_AUTH_TOKEN": tenant.token,
           "SENTRY_ORG": tenant.org, "SENTRY_PROJECT": "cli-app", "SENTRY_LOG_LEVEL": "warn"}

    def cli(*args: str) -> str:
        done = subprocess.run([SENTRY_CLI, *args], env=env, capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    auth = {"Authorization": f"Bearer {tenant.token}"}
    assert "Created release 2.1.0" in cli("releases", "new", "2.1.0")
    httpx.post(f"{server.url}/api/0/organizations/{tenant.org}/repos/", headers=auth,
               json={"name": "acme/shop"}).raise_for_status()
    out = cli("releases", "set-commits", "2.1.0", "--commit", "acme/shop@" + "a" * 40)
    assert "acme/shop" in out
    assert "Finalized release 2.1.0" in cli("releases", "finalize", "2.1.0")
    cli("releases", "deploys", "2.1.0", "new", "-e", "production")
    assert "2.1.0" in cli("releases", "list")
    assert "2.1.0" in cli("releases", "info", "2.1.0")
    release = httpx.get(f"{server.url}/api/0/organizations/{tenant.org}/releases/2.1.0/",
                        headers=auth).json()
    assert release["dateReleased"] is not None and release["deployCount"] == 1
    assert release["lastCommit"]["id"] == "a" * 40
    assert [p["slug"] for p in release["projects"]] == ["cli-app"]
