"""Helpers for the web UI tests: users with roles, and logging a client in through the form."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import Role

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class WebUser:
    email: str
    password: str
    org: str
    project: str


def add_user(db: Database, email: str, org: str = "acme", role: Role = Role.owner,
             project: str | None = "Web") -> WebUser:
    """A user with ``role`` in ``org`` (created when missing), and optionally a project in it."""
    with db.session() as s:
        accounts.create_user(s, email, PASSWORD)
        organization = accounts.get_or_create_org(s, org)
        accounts.set_member(s, organization, email, role)
        slug = ""
        if project:
            existing = {p.name: p for p in accounts.projects_of(s, organization)}
            made = existing.get(project) or accounts.create_project(s, organization, project)
            slug = made.slug
        return WebUser(email, PASSWORD, organization.slug, slug)


def login(client: httpx.Client, user: WebUser) -> str:
    """Log ``client`` in through the form; return the session's CSRF token."""
    response = client.post("/login", data={"email": user.email, "password": user.password},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/settings/tokens").text)


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "page has no csrf_token field"
    return found.group(1)
