"""FastAPI dependencies: who is calling, and may they touch this organization or project."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.sessions import COOKIE_NAME, csrf_matches, session_for_token
from spyglass.kernel.meta.models import LoginSession, Organization, Project, Role, User
from spyglass.kernel.runtime import Runtime

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def db_session(request: Request):  # type: ignore[no-untyped-def]
    with runtime(request).db.session() as s:
        yield s


class LoginRequired(Exception):
    """Raised by page dependencies; the app turns it into a redirect to the login page."""


@dataclass
class Caller:
    user: User
    #: The browser session when authenticated by cookie (None for API tokens).
    login: LoginSession | None = None

    @property
    def csrf_token(self) -> str:
        return self.login.csrf_token if self.login else ""


def _from_cookie(request: Request, db: Session) -> Caller | None:
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    login = session_for_token(db, token)
    return Caller(login.user, login) if login else None


def _check_csrf(request: Request, caller: Caller, form_token: str | None = None) -> None:
    if request.method in SAFE_METHODS or caller.login is None:
        return
    given = request.headers.get("x-csrf-token") or form_token
    if not csrf_matches(caller.login.csrf_token, given):
        raise HTTPException(403, "CSRF token missing or wrong; reload the page and try again")


async def page_caller(request: Request, db: Session = Depends(db_session)) -> Caller:
    """A logged-in browser user, CSRF-checked on unsafe methods; else redirect to login."""
    caller = _from_cookie(request, db)
    if caller is None:
        raise LoginRequired()
    form_token = None
    if request.method not in SAFE_METHODS:
        form = await request.form()
        form_token = str(form.get("csrf_token") or "") or None
    _check_csrf(request, caller, form_token)
    return caller


def api_caller(request: Request, db: Session = Depends(db_session)) -> Caller:
    """A user by ``Authorization: Bearer <API token>`` or by browser session (CSRF-checked)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = accounts.user_for_token(db, header[7:].strip())
        if user is None:
            raise HTTPException(401, "invalid or revoked API token",
                                headers={"WWW-Authenticate": "Bearer"})
        return Caller(user)
    caller = _from_cookie(request, db)
    if caller is None:
        raise HTTPException(401, "authentication required: send an API token as a Bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    _check_csrf(request, caller)
    return caller


def org_access(db: Session, caller: Caller, org_slug: str, need: Role) -> tuple[Organization, Role]:
    """The organization and the caller's role in it; 404 when the caller may not see it."""
    org = db.scalar(select(Organization).where(Organization.slug == org_slug))
    role = accounts.role_in(db, caller.user, org) if org else None
    if org is None or role is None:
        # Not 403: whether another tenant's organization exists is not the caller's business.
        raise HTTPException(404, "no such organization")
    if not role.at_least(need):
        raise HTTPException(403, f"this needs the {need.value} role or higher")
    return org, role


def project_access(db: Session, caller: Caller, project_id: int, need: Role) -> tuple[Project, Role]:
    project = db.get(Project, project_id)
    if project is None:
        raise HTTPException(404, "no such project")
    _, role = org_access(db, caller, project.organization.slug, need)
    return project, role


def project_by_slug(db: Session, caller: Caller, org_slug: str, project_slug: str,
                    need: Role = Role.viewer) -> tuple[Organization, Project, Role]:
    """The organization, project and the caller's role, as pages address them
    (``/o/{org}/p/{project}/...``): 404 when the caller may not see them, 403 when the role is
    too low."""
    org, role = org_access(db, caller, org_slug, need)
    project = db.scalar(select(Project).where(Project.org_id == org.id,
                                              Project.slug == project_slug))
    if project is None:
        raise HTTPException(404, "no such project")
    return org, project, role
