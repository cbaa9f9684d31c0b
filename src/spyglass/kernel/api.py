"""The REST API under ``/api/v1`` for accounts, projects, keys and tokens (OpenAPI at /api/docs).

Callers authenticate with ``Authorization: Bearer <API token>``; a browser session works too,
with its CSRF token in ``X-CSRF-Token`` for changes.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.deps import Caller, api_caller, db_session, org_access, project_access
from spyglass.kernel.meta.models import Organization, Project, ProjectKey, Role

router = APIRouter(prefix="/api/v1", tags=["accounts"])


class OrgOut(BaseModel):
    id: int
    slug: str
    name: str
    role: str


class KeyOut(BaseModel):
    id: int
    public_key: str
    label: str
    dsn: str
    active: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ProjectOut(BaseModel):
    id: int
    slug: str
    name: str
    org: str
    platform: str
    retention_days: int
    created_at: dt.datetime
    dsn: str | None = Field(description="DSN of the first active key, if any")
    public_key: str | None


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    platform: str = ""
    retention_days: int = Field(90, ge=1, le=3650)


class ProjectPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    retention_days: int | None = Field(None, ge=1, le=3650)


class KeyIn(BaseModel):
    label: str = Field("Default", max_length=200)


class MemberOut(BaseModel):
    user_id: int
    email: str
    role: str


class MemberIn(BaseModel):
    email: str
    role: Role = Role.member


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored")


class TokenIn(BaseModel):
    name: str = Field("", max_length=200)


class MeOut(BaseModel):
    id: int
    email: str
    is_admin: bool
    organizations: list[OrgOut]


def _public_url(request: Request) -> str:
    return request.app.state.runtime.settings.public_url


def _key_out(request: Request, project: Project, key: ProjectKey) -> KeyOut:
    return KeyOut(
        id=key.id, public_key=key.public_key, label=key.label,
        dsn=accounts.dsn(_public_url(request), project, key), active=key.active,
        created_at=key.created_at, revoked_at=key.revoked_at,
    )


def project_out(request: Request, db: Session, project: Project) -> ProjectOut:
    key = accounts.active_key(db, project)
    return ProjectOut(
        id=project.id, slug=project.slug, name=project.name, org=project.organization.slug,
        platform=project.platform, retention_days=project.retention_days,
        created_at=project.created_at,
        dsn=accounts.dsn(_public_url(request), project, key) if key else None,
        public_key=key.public_key if key else None,
    )


def _account_error(exc: accounts.AccountError) -> HTTPException:
    return HTTPException(400, str(exc))


@router.get("/me", response_model=MeOut)
def me(caller: Caller = Depends(api_caller), db: Session = Depends(db_session)) -> MeOut:
    orgs = [_org_out(db, caller, o) for o in accounts.orgs_of(db, caller.user)]
    return MeOut(id=caller.user.id, email=caller.user.email, is_admin=caller.user.is_admin,
                 organizations=orgs)


def _org_out(db: Session, caller: Caller, org: Organization) -> OrgOut:
    role = accounts.role_in(db, caller.user, org)
    return OrgOut(id=org.id, slug=org.slug, name=org.name, role=role.value if role else "")


@router.get("/organizations", response_model=list[OrgOut])
def list_orgs(caller: Caller = Depends(api_caller), db: Session = Depends(db_session)):
    return [_org_out(db, caller, o) for o in accounts.orgs_of(db, caller.user)]


@router.get("/organizations/{org}/projects", response_model=list[ProjectOut])
def list_projects(org: str, request: Request, caller: Caller = Depends(api_caller),
                  db: Session = Depends(db_session)):
    organization, _ = org_access(db, caller, org, Role.viewer)
    return [project_out(request, db, p) for p in accounts.projects_of(db, organization)]


@router.post("/organizations/{org}/projects", response_model=ProjectOut, status_code=201)
def create_project(org: str, body: ProjectIn, request: Request,
                   caller: Caller = Depends(api_caller), db: Session = Depends(db_session)):
    organization, _ = org_access(db, caller, org, Role.admin)
    try:
        project = accounts.create_project(db, organization, body.name, body.retention_days,
                                          body.platform)
    except accounts.AccountError as exc:
        raise _account_error(exc) from exc
    return project_out(request, db, project)


@router.get("/projects/{project_id}", response_model=ProjectOut)
def get_project(project_id: int, request: Request, caller: Caller = Depends(api_caller),
                db: Session = Depends(db_session)):
    project, _ = project_access(db, caller, project_id, Role.viewer)
    return project_out(request, db, project)


@router.patch("/projects/{project_id}", response_model=ProjectOut)
def update_project(project_id: int, body: ProjectPatch, request: Request,
                   caller: Caller = Depends(api_caller), db: Session = Depends(db_session)):
    project, _ = project_access(db, caller, project_id, Role.admin)
    if body.name is not None:
        project.name = body.name
    if body.retention_days is not None:
        project.retention_days = body.retention_days
    db.flush()
    return project_out(request, db, project)


@router.get("/projects/{project_id}/keys", response_model=list[KeyOut])
def list_keys(project_id: int, request: Request, caller: Caller = Depends(api_caller),
              db: Session = Depends(db_session)):
    # DSN public keys are public by design (browsers send them); anyone who sees the project may.
    project, _ = project_access(db, caller, project_id, Role.viewer)
    return [_key_out(request, project, k) for k in project.keys]


@router.post("/projects/{project_id}/keys", response_model=KeyOut, status_code=201)
def create_key(project_id: int, body: KeyIn, request: Request,
               caller: Caller = Depends(api_caller), db: Session = Depends(db_session)):
    project, _ = project_access(db, caller, project_id, Role.admin)
    return _key_out(request, project, accounts.add_key(db, project, body.label))


def _project_key(db: Session, caller: Caller, project_id: int, key_id: int) -> ProjectKey:
    project, _ = project_access(db, caller, project_id, Role.admin)
    key = db.get(ProjectKey, key_id)
    if key is None or key.project_id != project.id:
        raise HTTPException(404, "no such key in this project")
    return key


@router.post("/projects/{project_id}/keys/{key_id}/rotate", response_model=KeyOut)
def rotate_key(project_id: int, key_id: int, request: Request,
               caller: Caller = Depends(api_caller), db: Session = Depends(db_session)):
    key = _project_key(db, caller, project_id, key_id)
    new = accounts.rotate_key(db, key)
    request.app.state.runtime.keys.forget(key.public_key)
    return _key_out(request, key.project, new)


@router.delete("/projects/{project_id}/keys/{key_id}", response_model=KeyOut)
def revoke_key(project_id: int, key_id: int, request: Request,
               caller: Caller = Depends(api_caller), db: Session = Depends(db_session)):
    key = _project_key(db, caller, project_id, key_id)
    accounts.revoke_key(db, key)
    request.app.state.runtime.keys.forget(key.public_key)
    return _key_out(request, key.project, key)


@router.get("/organizations/{org}/members", response_model=list[MemberOut])
def list_members(org: str, caller: Caller = Depends(api_caller),
                 db: Session = Depends(db_session)):
    organization, _ = org_access(db, caller, org, Role.viewer)
    return [MemberOut(user_id=m.user_id, email=m.user.email, role=m.role)
            for m in accounts.members_of(db, organization)]


@router.put("/organizations/{org}/members", response_model=MemberOut)
def set_member(org: str, body: MemberIn, caller: Caller = Depends(api_caller),
               db: Session = Depends(db_session)):
    organization, role = org_access(db, caller, org, Role.admin)
    if body.role == Role.owner and role != Role.owner:
        raise HTTPException(403, "only an owner can make someone an owner")
    try:
        m = accounts.set_member(db, organization, body.email, body.role)
    except accounts.AccountError as exc:
        raise _account_error(exc) from exc
    return MemberOut(user_id=m.user_id, email=m.user.email, role=m.role)


@router.delete("/organizations/{org}/members/{user_id}", status_code=204)
def remove_member(org: str, user_id: int, caller: Caller = Depends(api_caller),
                  db: Session = Depends(db_session)) -> None:
    organization, _ = org_access(db, caller, org, Role.admin)
    try:
        accounts.remove_member(db, organization, user_id)
    except accounts.AccountError as exc:
        raise _account_error(exc) from exc


def _token_out(t) -> TokenOut:  # type: ignore[no-untyped-def]
    return TokenOut(id=t.id, name=t.name, prefix=t.prefix, created_at=t.created_at,
                    last_used_at=t.last_used_at, revoked_at=t.revoked_at)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(caller: Caller = Depends(api_caller), db: Session = Depends(db_session)):
    return [_token_out(t) for t in accounts.tokens_of(db, caller.user)]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenIn, caller: Caller = Depends(api_caller),
                 db: Session = Depends(db_session)):
    issued = accounts.create_api_token(db, caller.user, body.name)
    return TokenCreated(**_token_out(issued.record).model_dump(), token=issued.token)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, caller: Caller = Depends(api_caller),
                 db: Session = Depends(db_session)) -> None:
    try:
        accounts.revoke_token(db, caller.user, token_id)
    except accounts.AccountError as exc:
        raise HTTPException(404, str(exc)) from exc


def install(app: FastAPI) -> None:
    app.include_router(router)
