"""The REST API: tokens, roles, and isolation between tenants."""

from __future__ import annotations

from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.models import ApiToken


def test_openapi_documents_the_api(client):
    spec = client.get("/api/openapi.json").json()
    assert "/api/v1/organizations/{org}/projects" in spec["paths"]
    assert "/api/v1/tokens" in spec["paths"]
    assert client.get("/api/docs").status_code == 200


def test_token_auth_and_me(client, tenant_factory):
    t = tenant_factory("alice")
    me = client.get("/api/v1/me", headers=t.auth).json()
    assert me["email"] == t.email
    assert [o["slug"] for o in me["organizations"]] == [t.org]
    assert client.get("/api/v1/me").status_code == 401
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer spg_nope"})
    assert bad.status_code == 401 and "invalid" in bad.json()["detail"]


def test_tokens_are_hashed_and_revocable(client, tenant_factory):
    t = tenant_factory("bob")
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=t.auth)
    assert created.status_code == 201
    new_token = created.json()["token"]
    with client.app.state.runtime.db.session() as s:
        stored = [r.token_hash for r in s.query(ApiToken).all()]
    assert new_token not in stored and all(len(h) == 64 for h in stored)
    headers = {"Authorization": f"Bearer {new_token}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    listed = client.get("/api/v1/tokens", headers=t.auth).json()
    assert {x["name"] for x in listed} == {"test", "ci"}
    assert all("token" not in x for x in listed)
    assert client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=t.auth).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_project_lifecycle_and_keys(client, tenant_factory):
    t = tenant_factory("carol")
    made = client.post(f"/api/v1/organizations/{t.org}/projects", json={"name": "Web Shop"},
                       headers=t.auth)
    assert made.status_code == 201
    p = made.json()
    assert p["slug"] == "web-shop" and p["dsn"].endswith(f"@localhost:8000/{p['id']}")
    assert p["public_key"] in p["dsn"] and len(p["public_key"]) == 32
    patched = client.patch(f"/api/v1/projects/{p['id']}", json={"retention_days": 30},
                           headers=t.auth)
    assert patched.json()["retention_days"] == 30
    keys = client.get(f"/api/v1/projects/{p['id']}/keys", headers=t.auth).json()
    rotated = client.post(f"/api/v1/projects/{p['id']}/keys/{keys[0]['id']}/rotate",
                          headers=t.auth).json()
    assert rotated["public_key"] != keys[0]["public_key"] and rotated["active"]
    keys = client.get(f"/api/v1/projects/{p['id']}/keys", headers=t.auth).json()
    assert [k["active"] for k in keys] == [False, True]
    revoked = client.delete(f"/api/v1/projects/{p['id']}/keys/{rotated['id']}", headers=t.auth)
    assert revoked.json()["active"] is False
    assert client.get(f"/api/v1/projects/{p['id']}", headers=t.auth).json()["dsn"] is None


def test_roles_limit_what_members_can_do(client, tenant_factory):
    owner = tenant_factory("olga")
    viewer = tenant_factory("victor")
    db = client.app.state.runtime.db
    with db.session() as s:
        org = accounts.get_or_create_org(s, owner.org)
        from spyglass.kernel.meta.models import Role

        accounts.set_member(s, org, viewer.email, Role.viewer)
    # A viewer reads but cannot create projects, keys or change members.
    assert client.get(f"/api/v1/organizations/{owner.org}/projects", headers=viewer.auth).status_code == 200
    for method, url, body in [
        ("POST", f"/api/v1/organizations/{owner.org}/projects", {"name": "x"}),
        ("POST", f"/api/v1/projects/{owner.project_id}/keys", {"label": "x"}),
        ("PUT", f"/api/v1/organizations/{owner.org}/members", {"email": viewer.email, "role": "admin"}),
    ]:
        r = client.request(method, url, json=body, headers=viewer.auth)
        assert r.status_code == 403, (url, r.text)
    # The last owner cannot be demoted.
    r = client.put(f"/api/v1/organizations/{owner.org}/members",
                   json={"email": owner.email, "role": "member"}, headers=owner.auth)
    assert r.status_code == 400 and "owner" in r.json()["detail"]
    members = client.get(f"/api/v1/organizations/{owner.org}/members", headers=owner.auth).json()
    assert {m["email"]: m["role"] for m in members} == {owner.email: "owner", viewer.email: "viewer"}


def test_one_tenant_cannot_see_or_change_another(client, tenant_factory):
    a = tenant_factory("acme")
    b = tenant_factory("globex")
    # Organization and project of B are invisible to A: 404, not 403, so existence does not leak.
    assert client.get(f"/api/v1/organizations/{b.org}/projects", headers=a.auth).status_code == 404
    for url in [f"/api/v1/projects/{b.project_id}", f"/api/v1/projects/{b.project_id}/keys"]:
        assert client.get(url, headers=a.auth).status_code == 404
    assert client.post(f"/api/v1/projects/{b.project_id}/keys", json={}, headers=a.auth).status_code == 404
    assert client.patch(f"/api/v1/projects/{b.project_id}", json={"name": "pwned"},
                        headers=a.auth).status_code == 404
    # A's token cannot revoke B's tokens either.
    b_tokens = client.get("/api/v1/tokens", headers=b.auth).json()
    assert client.delete(f"/api/v1/tokens/{b_tokens[0]['id']}", headers=a.auth).status_code == 404
    assert client.get("/api/v1/me", headers=b.auth).status_code == 200


def test_ingest_key_of_one_project_cannot_write_another(client, tenant_factory):
    a = tenant_factory("initech")
    b = tenant_factory("umbrella")
    envelope = b'{}\n{"type":"event"}\n{"message":"from a","event_id":"0123456789abcdef0123456789abcdef"}\n'
    r = client.post(f"/api/{b.project_id}/envelope/?sentry_key={a.public_key}", content=envelope)
    assert r.status_code == 403
    r = client.post(f"/api/{a.project_id}/envelope/?sentry_key={a.public_key}", content=envelope)
    assert r.status_code == 200
    store = client.app.state.runtime.store
    assert store.count("events", b.project_id) == 0
    assert store.count("events", a.project_id) == 1
