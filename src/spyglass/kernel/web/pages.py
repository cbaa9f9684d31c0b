"""The web UI shell: login, organization and project pages, settings, and honest placeholders.

Feature pages live in their own packages; this module serves what every install has: the
login flow, the org overview, project creation, project/key/member/token settings, the static
files, and an "area not built yet" page for every nav area no feature has registered.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from sqlalchemy.orm import Session

from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.deps import Caller, db_session, org_access, page_caller, runtime
from spyglass.kernel.auth.deps import project_by_slug as _project
from spyglass.kernel.auth.sessions import (
    COOKIE_NAME,
    TooManyAttempts,
    authenticate,
    end_session,
    session_for_token,
    start_session,
)
from spyglass.kernel.meta.models import Organization, Project, ProjectKey, Role
from spyglass.kernel.web import templating
from spyglass.kernel.web.templating import NAV_AREAS, render

STATIC = Path(__file__).parent / "static"
MAX_RETENTION_DAYS = 3650

router = APIRouter(include_in_schema=False)

#: Fixed messages for ``?done=...`` after a redirect, so no user text is reflected from URLs.
NOTICES = {
    "project-created": "Project created. Send events to the DSN below.",
    "project-saved": "Project settings saved.",
    "key-created": "New client key created.",
    "key-rotated": "Key rotated: the old key is revoked; update your SDKs with the new DSN.",
    "key-revoked": "Key revoked. Events sent with it are now refused.",
    "member-added": "Member added.",
    "member-updated": "Role changed.",
    "member-removed": "Member removed.",
    "token-revoked": "Token revoked.",
}


def safe_next(value: str | None) -> str:
    """A local path to go to after login; anything else (other hosts, schemes) becomes "/"."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    # Browsers treat "\" like "/", so "/\evil.com" would leave the site; control characters
    # and whitespace have no business in a redirect target either.
    if "\\" in value or any(ord(c) < 33 or ord(c) == 127 for c in value):
        return "/"
    return value


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _notice(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("done", ""))


def _secure_cookie(request: Request) -> bool:
    mode = runtime(request).settings.secure_cookies.strip().lower()
    return mode == "true" or (mode == "auto" and request.url.scheme == "https")




# -- login and logout --------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next: str = "/", db: Session = Depends(db_session)) -> Response:
    token = request.cookies.get(COOKIE_NAME)
    if token and session_for_token(db, token) is not None:
        return _redirect(safe_next(next))
    return render(request, "login.html", {"next": safe_next(next), "email": ""})


@router.post("/login")
def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    db: Session = Depends(db_session),
) -> Response:
    settings = runtime(request).settings
    client = request.client.host if request.client else "unknown"
    context = {"next": safe_next(next), "email": email}
    try:
        user = authenticate(
            db, email, password, client, settings.login_max_failures, settings.login_window_s
        )
    except TooManyAttempts as exc:
        minutes = max(1, round(exc.retry_after / 60))
        context["error"] = (
            f"Too many failed login attempts. Wait {minutes} minute{'s' if minutes != 1 else ''}"
            " and try again."
        )
        return render(request, "login.html", context, 429,
                      headers={"Retry-After": str(exc.retry_after)})
    if user is None:
        db.commit()  # keep the failure count even though we answer with an error
        context["error"] = "Wrong email or password."
        return render(request, "login.html", context, 401)
    new = start_session(db, user, settings.session_days)
    db.commit()
    response = _redirect(safe_next(next))
    response.set_cookie(
        COOKIE_NAME,
        new.token,
        max_age=settings.session_days * 86400,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure_cookie(request),
    )
    return response


@router.post("/logout")
def logout(
    request: Request, caller: Caller = Depends(page_caller), db: Session = Depends(db_session)
) -> Response:
    token = request.cookies.get(COOKIE_NAME)
    if token:
        end_session(db, token)
        db.commit()
    response = _redirect("/login")
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax",
                           secure=_secure_cookie(request))
    return response


# -- home and organizations --------------------------------------------------------------------


@router.get("/")
def home(
    request: Request, caller: Caller = Depends(page_caller), db: Session = Depends(db_session)
) -> Response:
    orgs = accounts.orgs_of(db, caller.user)
    if not orgs:
        return render(request, "welcome.html", {"caller": caller}, db=db)
    org = orgs[0]
    projects = accounts.projects_of(db, org)
    if projects:
        return _redirect(templating.first_area_href(org.slug, projects[0].slug))
    return _redirect(f"/o/{org.slug}/")


@router.post("/orgs")
def create_org(
    request: Request,
    name: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    if not caller.user.is_admin:
        raise HTTPException(403, "only instance administrators can create organizations")
    slug = accounts.slugify(name) if name.strip() else ""
    error = None
    if not slug:
        error = "An organization needs a name."
    elif db.scalar(select(Organization).where(Organization.slug == slug)):
        error = f"An organization with the address /o/{slug}/ already exists."
    if error:
        return render(request, "welcome.html", {"caller": caller, "error": error, "name": name},
                      400, db=db)
    org = accounts.get_or_create_org(db, name.strip(), owner=caller.user)
    db.commit()
    return _redirect(f"/o/{org.slug}/")


@router.get("/o/{org_slug}")
def org_no_slash(org_slug: str) -> Response:
    return _redirect(f"/o/{quote(org_slug)}/")


@router.get("/o/{org_slug}/")
def org_overview(
    request: Request,
    org_slug: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, role = org_access(db, caller, org_slug, Role.viewer)
    projects = accounts.projects_of(db, org)
    return render(request, "org.html", {
        "caller": caller, "org": org, "role": role, "org_projects": projects,
        "member_count": len(accounts.members_of(db, org)),
        "first_area_href": templating.first_area_href,
    }, db=db)


@router.get("/o/{org_slug}/projects/new")
def new_project_form(
    request: Request,
    org_slug: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, role = org_access(db, caller, org_slug, Role.admin)
    return render(request, "project_new.html",
                  {"caller": caller, "org": org, "role": role, "name": "", "platform": ""}, db=db)


@router.post("/o/{org_slug}/projects")
def create_project(
    request: Request,
    org_slug: str,
    name: str = Form(""),
    platform: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, role = org_access(db, caller, org_slug, Role.admin)
    try:
        project = accounts.create_project(
            db, org, name, runtime(request).settings.default_retention_days, platform.strip()[:64]
        )
    except accounts.AccountError as exc:
        db.rollback()
        return render(request, "project_new.html", {
            "caller": caller, "org": org, "role": role, "name": name, "platform": platform,
            "error": str(exc),
        }, 400, db=db)
    db.commit()
    return _redirect(f"/o/{org.slug}/p/{project.slug}/settings?done=project-created")


# -- projects ----------------------------------------------------------------------------------


@router.get("/o/{org_slug}/p/{project_slug}")
@router.get("/o/{org_slug}/p/{project_slug}/")
def project_home(
    org_slug: str,
    project_slug: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, _ = _project(db, caller, org_slug, project_slug, Role.viewer)
    return _redirect(templating.first_area_href(org.slug, project.slug))


def _placeholder_route(slug: str):  # type: ignore[no-untyped-def]
    def placeholder(
        request: Request,
        org_slug: str,
        project_slug: str,
        caller: Caller = Depends(page_caller),
        db: Session = Depends(db_session),
    ) -> Response:
        org, project, role = _project(db, caller, org_slug, project_slug, Role.viewer)
        nav_area = templating.area(slug)
        if nav_area.built and nav_area.href(org.slug, project.slug) != request.url.path:
            return _redirect(nav_area.href(org.slug, project.slug))
        return render(request, "area_placeholder.html", {
            "caller": caller, "org": org, "project": project, "role": role, "area": nav_area,
        }, db=db)

    placeholder.__name__ = f"area_{slug.replace('-', '_')}"
    return placeholder


def _project_keys(db: Session, project: Project) -> list[ProjectKey]:
    return list(db.scalars(
        select(ProjectKey).where(ProjectKey.project_id == project.id)
        .order_by(ProjectKey.revoked_at.is_not(None), ProjectKey.id)
    ))


@router.get("/o/{org_slug}/p/{project_slug}/settings")
def project_settings(
    request: Request,
    org_slug: str,
    project_slug: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.viewer)
    return _project_settings_page(request, db, caller, org, project, role)


def _project_settings_page(
    request: Request, db: Session, caller: Caller, org: Organization, project: Project,
    role: Role, error: str | None = None, status: int = 200,
) -> Response:
    key = accounts.active_key(db, project)
    dsn = accounts.dsn(runtime(request).settings.public_url, project, key) if key else None
    return render(request, "project_settings.html", {
        "caller": caller, "org": org, "project": project, "role": role, "dsn": dsn,
        "notice": _notice(request), "error": error, "max_retention": MAX_RETENTION_DAYS,
    }, status, db=db)


@router.post("/o/{org_slug}/p/{project_slug}/settings")
def save_project_settings(
    request: Request,
    org_slug: str,
    project_slug: str,
    name: str = Form(""),
    retention_days: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.admin)
    error = None
    try:
        days = int(retention_days)
    except ValueError:
        days = 0
    if not name.strip():
        error = "A project needs a name."
    elif not 1 <= days <= MAX_RETENTION_DAYS:
        error = f"Retention must be a whole number of days from 1 to {MAX_RETENTION_DAYS}."
    if error:
        return _project_settings_page(request, db, caller, org, project, role, error, 400)
    project.name = name.strip()[:200]
    project.retention_days = days
    db.commit()
    return _redirect(f"/o/{org.slug}/p/{project.slug}/settings?done=project-saved")


@router.get("/o/{org_slug}/p/{project_slug}/settings/keys")
def project_keys(
    request: Request,
    org_slug: str,
    project_slug: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.viewer)
    public_url = runtime(request).settings.public_url
    keys = [(k, accounts.dsn(public_url, project, k)) for k in _project_keys(db, project)]
    return render(request, "project_keys.html", {
        "caller": caller, "org": org, "project": project, "role": role, "keys": keys,
        "notice": _notice(request),
    }, db=db)


@router.post("/o/{org_slug}/p/{project_slug}/settings/keys")
def create_key(
    org_slug: str,
    project_slug: str,
    label: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, _ = _project(db, caller, org_slug, project_slug, Role.admin)
    accounts.add_key(db, project, label.strip()[:200] or "Default")
    db.commit()
    return _redirect(f"/o/{org.slug}/p/{project.slug}/settings/keys?done=key-created")


@router.post("/o/{org_slug}/p/{project_slug}/settings/keys/{key_id}/{action}")
def change_key(
    request: Request,
    org_slug: str,
    project_slug: str,
    key_id: int,
    action: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, _ = _project(db, caller, org_slug, project_slug, Role.admin)
    key = db.get(ProjectKey, key_id)
    if key is None or key.project_id != project.id or action not in ("rotate", "revoke"):
        raise HTTPException(404, "no such key")
    if action == "rotate":
        accounts.rotate_key(db, key)
    else:
        accounts.revoke_key(db, key)
    db.commit()
    runtime(request).keys.forget(key.public_key)
    done = "key-rotated" if action == "rotate" else "key-revoked"
    return _redirect(f"/o/{org.slug}/p/{project.slug}/settings/keys?done={done}")


# -- members -----------------------------------------------------------------------------------


def _members_page(
    request: Request, db: Session, caller: Caller, org: Organization, role: Role,
    error: str | None = None, status: int = 200, email: str = "",
) -> Response:
    grantable = [r for r in Role if role == Role.owner or r != Role.owner]
    return render(request, "members.html", {
        "caller": caller, "org": org, "role": role, "members": accounts.members_of(db, org),
        "grantable": grantable, "error": error, "notice": _notice(request), "email": email,
    }, status, db=db)


@router.get("/o/{org_slug}/settings/members")
def members(
    request: Request,
    org_slug: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, role = org_access(db, caller, org_slug, Role.viewer)
    return _members_page(request, db, caller, org, role)


def _parse_role(value: str) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None


def _may_assign(mine: Role, current: Role | None, wanted: Role | None) -> str | None:
    """Why ``mine`` may not make this change, or None when allowed."""
    if wanted is not None and wanted == Role.owner and mine != Role.owner:
        return "Only owners can make someone an owner."
    if current == Role.owner and mine != Role.owner:
        return "Only owners can change or remove another owner."
    return None


@router.post("/o/{org_slug}/settings/members")
def add_member(
    request: Request,
    org_slug: str,
    email: str = Form(""),
    role: str = Form("member"),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, mine = org_access(db, caller, org_slug, Role.admin)
    wanted = _parse_role(role)
    existing = accounts.user_by_email(db, email)
    current = accounts.role_in(db, existing, org) if existing and not existing.is_admin else None
    error = "Choose a role." if wanted is None else _may_assign(mine, current, wanted)
    if error is None and wanted is not None:
        try:
            accounts.set_member(db, org, email, wanted)
        except accounts.AccountError as exc:
            error = str(exc)
    if error:
        db.rollback()
        return _members_page(request, db, caller, org, mine, error, 400, email)
    db.commit()
    return _redirect(f"/o/{org.slug}/settings/members?done=member-added")


def _member_role(db: Session, org: Organization, user_id: int) -> tuple[str, Role]:
    for m in accounts.members_of(db, org):
        if m.user_id == user_id:
            return m.user.email, Role(m.role)
    raise HTTPException(404, "no such member")


@router.post("/o/{org_slug}/settings/members/{user_id}/role")
def change_member_role(
    request: Request,
    org_slug: str,
    user_id: int,
    role: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, mine = org_access(db, caller, org_slug, Role.admin)
    email, current = _member_role(db, org, user_id)
    wanted = _parse_role(role)
    error = "Choose a role." if wanted is None else _may_assign(mine, current, wanted)
    if error is None and wanted is not None:
        try:
            accounts.set_member(db, org, email, wanted)
        except accounts.AccountError as exc:
            error = str(exc)
    if error:
        db.rollback()
        return _members_page(request, db, caller, org, mine, error, 400)
    db.commit()
    return _redirect(f"/o/{org.slug}/settings/members?done=member-updated")


@router.post("/o/{org_slug}/settings/members/{user_id}/remove")
def remove_member(
    request: Request,
    org_slug: str,
    user_id: int,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, mine = org_access(db, caller, org_slug, Role.admin)
    _, current = _member_role(db, org, user_id)
    error = _may_assign(mine, current, None)
    if error is None:
        try:
            accounts.remove_member(db, org, user_id)
        except accounts.AccountError as exc:
            error = str(exc)
    if error:
        db.rollback()
        return _members_page(request, db, caller, org, mine, error, 400)
    db.commit()
    if user_id == caller.user.id and not caller.user.is_admin:
        return _redirect("/")
    return _redirect(f"/o/{org.slug}/settings/members?done=member-removed")


# -- API tokens --------------------------------------------------------------------------------


def _tokens_page(
    request: Request, db: Session, caller: Caller, new_token: str | None = None,
    error: str | None = None, status: int = 200,
) -> Response:
    return render(request, "tokens.html", {
        "caller": caller, "tokens": accounts.tokens_of(db, caller.user),
        "new_token": new_token, "error": error, "notice": _notice(request),
        "public_url": runtime(request).settings.public_url,
    }, status, db=db)


@router.get("/settings/tokens")
def tokens(
    request: Request, caller: Caller = Depends(page_caller), db: Session = Depends(db_session)
) -> Response:
    return _tokens_page(request, db, caller)


@router.post("/settings/tokens")
def create_token(
    request: Request,
    name: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    issued = accounts.create_api_token(db, caller.user, name.strip()[:200])
    db.commit()
    # Shown once, in this response only: the token is never put in a URL or stored in clear.
    return _tokens_page(request, db, caller, new_token=issued.token)


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(
    request: Request,
    token_id: int,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    try:
        accounts.revoke_token(db, caller.user, token_id)
    except accounts.AccountError as exc:
        raise HTTPException(404, str(exc)) from None
    db.commit()
    return _redirect("/settings/tokens?done=token-revoked")


# -- installation ------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    # One route per area that no feature has registered yet. Features register at import time,
    # which happens for all of them before any install(), so their own routes are not shadowed.
    for nav_area in NAV_AREAS:
        if not nav_area.built:
            app.add_api_route(
                f"/o/{{org_slug}}/p/{{project_slug}}/{nav_area.slug}",
                _placeholder_route(nav_area.slug),
                methods=["GET"],
                include_in_schema=False,
            )
