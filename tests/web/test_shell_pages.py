"""The web UI shell over HTTP: login, CSRF, roles, tenant isolation and the settings pages."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape
from sqlalchemy import select

from spyglass.kernel.meta.models import ApiToken, Membership, Project, ProjectKey, Role
from spyglass.kernel.web import templating
from spyglass.kernel.web.pages import safe_next

from web_helpers import PASSWORD, csrf_of, login

HTML = {"accept": "text/html"}


def keys_of(db, project_slug: str) -> list[ProjectKey]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == project_slug))
        return list(s.scalars(select(ProjectKey).where(ProjectKey.project_id == project.id)))


# -- login -------------------------------------------------------------------------------------


def test_pages_need_login(client):
    response = client.get("/o/acme/settings/members", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/o/acme/settings/members"
    page = client.get("/login")
    assert page.status_code == 200 and 'name="password"' in page.text


def test_login_sets_a_safe_session_cookie(client, user_factory):
    user = user_factory("owner@example.com")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                           "next": "/o/acme/"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/o/acme/"
    cookie = response.headers["set-cookie"].lower()
    assert "spyglass_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # "auto" over plain http
    home = client.get("/", follow_redirects=False)
    assert home.headers["location"] == f"/o/acme/p/{user.project}/issues"
    assert user.email in client.get("/o/acme/").text


def test_secure_cookie_when_configured(client, user_factory):
    client.app.state.runtime.settings.secure_cookies = "true"
    user = user_factory("owner@example.com")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD},
                           follow_redirects=False)
    assert "secure" in response.headers["set-cookie"].lower()


def test_wrong_password_is_refused(client, user_factory):
    user_factory("owner@example.com")
    response = client.post("/login", data={"email": "owner@example.com", "password": "nope-nope"},
                           follow_redirects=False)
    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert "set-cookie" not in response.headers
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_login_rate_limit_answers_429(client, user_factory):
    client.app.state.runtime.settings.login_max_failures = 3
    user = user_factory("owner@example.com")
    for _ in range(3):
        bad = client.post("/login", data={"email": user.email, "password": "wrong-password"})
        assert bad.status_code == 401
    # Even the right password is refused while the limit holds.
    limited = client.post("/login", data={"email": user.email, "password": PASSWORD},
                          follow_redirects=False)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "Too many failed login attempts" in limited.text
    assert "set-cookie" not in limited.headers


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/o/acme/", "/o/acme/"),
        ("/o/acme/p/web/issues?x=1", "/o/acme/p/web/issues?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x", "/"),
        ("", "/"),
    ],
)
def test_safe_next(given, expected):
    assert safe_next(given) == expected


def test_login_never_redirects_off_site(client, user_factory):
    user = user_factory("owner@example.com")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                           "next": "//evil.example/x"}, follow_redirects=False)
    assert response.headers["location"] == "/"
    # Once logged in, GET /login forwards to a safe next as well.
    again = client.get("/login", params={"next": "https://evil.example"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/"


def test_logout_ends_the_session(client, user_factory):
    csrf = login(client, user_factory("owner@example.com"))
    cookie = client.cookies.get("spyglass_session")
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    client.cookies.set("spyglass_session", cookie)  # replaying the old cookie does not work
    assert client.get("/o/acme/", follow_redirects=False).status_code == 303


def test_user_without_organization_sees_welcome(client, db):
    from spyglass.kernel.auth import accounts
    from web_helpers import WebUser

    with db.session() as s:
        accounts.create_user(s, "new@example.com", PASSWORD)
        accounts.create_user(s, "root@example.com", PASSWORD, is_admin=True)
    csrf = login(client, WebUser("new@example.com", PASSWORD, "", ""))
    page = client.get("/")
    assert page.status_code == 200 and "not a member of any organization" in page.text
    assert "Create organization" not in page.text
    assert client.post("/orgs", data={"name": "Mine", "csrf_token": csrf}).status_code == 403

    client.cookies.clear()
    csrf = login(client, WebUser("root@example.com", PASSWORD, "", ""))
    made = client.post("/orgs", data={"name": "Initech", "csrf_token": csrf},
                       follow_redirects=False)
    assert made.headers["location"] == "/o/initech/"
    again = client.post("/orgs", data={"name": "initech", "csrf_token": csrf})
    assert again.status_code == 400 and "already exists" in again.text


# -- CSRF --------------------------------------------------------------------------------------


def test_post_without_csrf_token_is_forbidden(client, user_factory, db):
    user = user_factory("owner@example.com")
    csrf = login(client, user)
    missing = client.post("/o/acme/projects", data={"name": "Sneaky"}, headers=HTML)
    assert missing.status_code == 403 and "CSRF" in missing.text
    wrong = client.post("/o/acme/projects", data={"name": "Sneaky", "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    assert client.post("/logout", follow_redirects=False).status_code == 403
    with db.session() as s:
        assert s.scalar(select(Project).where(Project.name == "Sneaky")) is None
    # The header HTMX sends works as well as the form field.
    ok = client.post("/o/acme/projects", data={"name": "Fine"}, headers={"X-CSRF-Token": csrf},
                     follow_redirects=False)
    assert ok.status_code == 303


# -- projects and keys -------------------------------------------------------------------------


def test_create_project_shows_its_dsn(client, user_factory, db):
    csrf = login(client, user_factory("owner@example.com", project=None))
    assert "No projects yet" in client.get("/o/acme/").text
    response = client.post("/o/acme/projects", data={"name": "Web Shop", "csrf_token": csrf},
                           follow_redirects=False)
    assert response.headers["location"] == "/o/acme/p/web-shop/settings?done=project-created"
    page = client.get(response.headers["location"])
    (key,) = keys_of(db, "web-shop")
    with db.session() as s:
        project_id = s.scalar(select(Project.id).where(Project.slug == "web-shop"))
    assert f"http://{key.public_key}@localhost:8000/{project_id}" in page.text
    assert "Project created" in page.text


def test_create_project_error_is_shown(client, user_factory):
    csrf = login(client, user_factory("owner@example.com"))
    response = client.post("/o/acme/projects", data={"name": "  ", "csrf_token": csrf})
    assert response.status_code == 400 and "a project needs a name" in response.text


def test_admin_edits_project_settings(client, user_factory, db):
    user = user_factory("admin@example.com", role=Role.admin)
    csrf = login(client, user)
    url = f"/o/acme/p/{user.project}/settings"
    saved = client.post(url, data={"name": "Web App", "retention_days": "30",
                                   "csrf_token": csrf}, follow_redirects=False)
    assert saved.status_code == 303
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == user.project))
        assert (project.name, project.retention_days) == ("Web App", 30)
    bad = client.post(url, data={"name": "Web App", "retention_days": "0", "csrf_token": csrf})
    assert bad.status_code == 400 and "Retention must be" in bad.text


def test_keys_create_rotate_revoke(client, user_factory, db):
    user = user_factory("admin@example.com", role=Role.admin)
    csrf = login(client, user)
    base = f"/o/acme/p/{user.project}/settings/keys"
    client.post(base, data={"label": "production", "csrf_token": csrf})
    first, second = keys_of(db, user.project)
    assert second.label == "production"
    page = client.get(base).text
    assert first.public_key in page and second.public_key in page
    client.post(f"{base}/{first.id}/rotate", data={"csrf_token": csrf})
    client.post(f"{base}/{second.id}/revoke", data={"csrf_token": csrf})
    states = {k.public_key: k.active for k in keys_of(db, user.project)}
    assert states[first.public_key] is False and states[second.public_key] is False
    assert sum(states.values()) == 1  # the rotated replacement
    assert "Revoked" in client.get(base).text


def test_viewer_cannot_create_keys_or_edit_settings(client, user_factory, db):
    user_factory("owner@example.com")
    viewer = user_factory("viewer@example.com", role=Role.viewer)
    csrf = login(client, viewer)
    base = f"/o/acme/p/{viewer.project}/settings"
    page = client.get(base + "/keys")
    assert page.status_code == 200 and "Create key" not in page.text
    assert "changing them needs the admin role" in page.text
    denied = client.post(base + "/keys", data={"label": "mine", "csrf_token": csrf}, headers=HTML)
    assert denied.status_code == 403 and "admin role" in denied.text
    (key,) = keys_of(db, viewer.project)
    assert client.post(f"{base}/keys/{key.id}/revoke", data={"csrf_token": csrf}).status_code == 403
    assert keys_of(db, viewer.project)[0].active
    settings = client.get(base).text
    assert "<fieldset disabled" in settings and "Save changes" not in settings
    assert client.post(base, data={"name": "x", "retention_days": "1",
                                   "csrf_token": csrf}).status_code == 403
    assert client.post("/o/acme/projects", data={"name": "x", "csrf_token": csrf}).status_code == 403


def test_member_of_one_org_cannot_see_another(client, user_factory):
    other = user_factory("bob@example.com", org="globex")
    alice = user_factory("alice@example.com", org="acme")
    login(client, alice)
    for path in [
        "/o/globex/",
        "/o/globex/settings/members",
        f"/o/globex/p/{other.project}/settings",
        f"/o/globex/p/{other.project}/settings/keys",
        f"/o/globex/p/{other.project}/issues",
        "/o/globex/projects/new",
    ]:
        response = client.get(path, headers=HTML)
        assert response.status_code == 404, path
        assert "globex" not in response.text.lower().replace("/o/globex", ""), path
    # The switcher lists only the caller's organizations.
    assert "globex" not in client.get("/o/acme/").text.lower()


def test_unknown_key_of_another_project_is_404(client, user_factory, db):
    theirs = user_factory("bob@example.com", org="globex")
    mine = user_factory("alice@example.com", org="acme")
    csrf = login(client, mine)
    (their_key,) = keys_of(db, theirs.project)
    url = f"/o/acme/p/{mine.project}/settings/keys/{their_key.id}/revoke"
    assert client.post(url, data={"csrf_token": csrf}).status_code == 404
    assert keys_of(db, theirs.project)[0].active


# -- members -----------------------------------------------------------------------------------


def test_members_add_change_remove(client, user_factory, db):
    owner = user_factory("owner@example.com")
    user_factory("carol@example.com", org="elsewhere", project=None)
    csrf = login(client, owner)
    url = "/o/acme/settings/members"
    unknown = client.post(url, data={"email": "nobody@example.com", "role": "member",
                                     "csrf_token": csrf})
    assert unknown.status_code == 400 and "no user with email nobody@example.com" in unknown.text
    added = client.post(url, data={"email": "carol@example.com", "role": "viewer",
                                   "csrf_token": csrf}, follow_redirects=False)
    assert added.status_code == 303
    page = client.get(url).text
    assert "carol@example.com" in page
    with db.session() as s:
        carol = s.scalar(select(Membership).join(Membership.user)
                         .where(Membership.role == "viewer"))
        carol_id = carol.user_id
    client.post(f"{url}/{carol_id}/role", data={"role": "admin", "csrf_token": csrf})
    with db.session() as s:
        assert s.scalar(select(Membership.role).where(Membership.user_id == carol_id,
                                                      Membership.org_id == carol.org_id)) == "admin"
    client.post(f"{url}/{carol_id}/remove", data={"csrf_token": csrf})
    assert "carol@example.com" not in client.get(url).text


def test_last_owner_cannot_leave(client, user_factory, db):
    owner = user_factory("owner@example.com")
    csrf = login(client, owner)
    with db.session() as s:
        owner_id = s.scalar(select(Membership.user_id).where(Membership.role == "owner"))
    response = client.post(f"/o/acme/settings/members/{owner_id}/role",
                           data={"role": "member", "csrf_token": csrf})
    assert response.status_code == 400
    assert "an organization must keep at least one owner" in response.text


def test_only_owners_grant_owner(client, user_factory, db):
    user_factory("owner@example.com")
    admin = user_factory("admin@example.com", role=Role.admin)
    user_factory("dave@example.com", org="elsewhere", project=None)
    csrf = login(client, admin)
    page = client.get("/o/acme/settings/members").text
    assert '<option value="owner"' not in page
    response = client.post("/o/acme/settings/members",
                           data={"email": "dave@example.com", "role": "owner", "csrf_token": csrf})
    assert response.status_code == 400 and "Only owners can make someone an owner." in response.text
    with db.session() as s:
        owner_id = s.scalar(select(Membership.user_id).where(Membership.role == "owner"))
    demote = client.post(f"/o/acme/settings/members/{owner_id}/role",
                         data={"role": "viewer", "csrf_token": csrf})
    assert demote.status_code == 400 and "Only owners can change or remove" in demote.text


def test_viewer_sees_members_read_only(client, user_factory):
    user_factory("owner@example.com")
    viewer = user_factory("viewer@example.com", role=Role.viewer)
    csrf = login(client, viewer)
    page = client.get("/o/acme/settings/members")
    assert page.status_code == 200 and "owner@example.com" in page.text
    assert "Add member" not in page.text
    response = client.post("/o/acme/settings/members",
                           data={"email": "viewer@example.com", "role": "owner", "csrf_token": csrf})
    assert response.status_code == 403


# -- API tokens --------------------------------------------------------------------------------


def test_tokens_are_shown_once_and_revocable(client, user_factory, db):
    csrf = login(client, user_factory("owner@example.com"))
    created = client.post("/settings/tokens", data={"name": "deploy", "csrf_token": csrf})
    assert created.status_code == 200
    token = re.search(r'data-copy="(spg_[^"]+)"', created.text) or re.search(
        r'<code class="copy-value">([^<]+)</code>', created.text)
    assert token, created.text
    secret = token.group(1)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    listing = client.get("/settings/tokens").text
    assert "deploy" in listing and secret not in listing and secret[:8] in listing
    with db.session() as s:
        token_id = s.scalar(select(ApiToken.id).where(ApiToken.name == "deploy"))
    client.post(f"/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert "Revoked" in client.get("/settings/tokens").text


def test_cannot_revoke_someone_elses_token(client, user_factory, db):
    user_factory("bob@example.com", org="globex")
    with db.session() as s:
        from spyglass.kernel.auth import accounts

        bob = accounts.user_by_email(s, "bob@example.com")
        token_id = accounts.create_api_token(s, bob, "bob's").record.id
    csrf = login(client, user_factory("alice@example.com"))
    assert client.post(f"/settings/tokens/{token_id}/revoke",
                       data={"csrf_token": csrf}).status_code == 404


# -- navigation and placeholders ---------------------------------------------------------------


def test_every_unbuilt_area_says_so(client, user_factory):
    user = user_factory("owner@example.com")
    login(client, user)
    for nav_area in templating.NAV_AREAS:
        if nav_area.built:
            continue
        page = client.get(f"/o/acme/p/{user.project}/{nav_area.slug}")
        assert page.status_code == 200, nav_area.slug
        assert f"{nav_area.label} is not built yet" in page.text
        assert "not built yet in this version of Spyglass" in page.text
        assert str(escape(nav_area.description)) in page.text


def test_nav_lists_every_area_in_order(client, user_factory):
    user = user_factory("owner@example.com")
    login(client, user)
    page = client.get(f"/o/acme/p/{user.project}/logs").text
    labels = [a.label for a in templating.NAV_AREAS]
    assert labels == ["Issues", "Releases", "Replays", "Performance", "Web Vitals", "Analytics", "Traces",
                      "Logs", "Metrics", "Monitors", "Alerts", "Costs", "Security", "Insights"]
    positions = [page.index(f"<span>{label}</span>") for label in labels]
    assert positions == sorted(positions)
    assert 'aria-current="page"' in page
    assert f'hx-headers=\'{{"X-CSRF-Token": "{csrf_of(page)}"}}\'' in page


def test_register_area_marks_it_built():
    area = templating.area("costs")
    before = area.path_template
    try:
        templating.register_area("costs", "/o/{org}/p/{project}/costs/overview")
        assert area.built and area.href("acme", "web") == "/o/acme/p/web/costs/overview"
    finally:
        area.path_template = before
    with pytest.raises(KeyError):
        templating.register_area("nope", "/x")


def test_add_template_dir(tmp_path):
    (tmp_path / "feature_test_page.html").write_text(
        '{% extends "layout.html" %}{% block bare %}<p>{{ greeting }}</p>{% endblock %}')
    templating.add_template_dir(tmp_path)
    templating.add_template_dir(tmp_path)  # idempotent
    html = templating.env.get_template("feature_test_page.html").render(greeting="<hi>")
    assert "<p>&lt;hi&gt;</p>" in html  # autoescaped


def test_vendored_assets_are_served(client):
    for path in ["/static/vendor/htmx/htmx.min.js", "/static/vendor/pico/pico.indigo.min.css",
                 "/static/vendor/uplot/uPlot.iife.min.js", "/static/vendor/uplot/uPlot.min.css",
                 "/static/spyglass.css", "/static/spyglass.js"]:
        assert client.get(path).status_code == 200, path


def test_html_404_page(client, user_factory):
    login(client, user_factory("owner@example.com"))
    response = client.get("/o/nope/", headers=HTML)
    assert response.status_code == 404
    assert "Page not found" in response.text and "Spyglass" in response.text
