"""A subset of Sentry's web API under ``/api/0/``, so existing tools work against Spyglass.

Covered: what ``sentry-cli releases`` calls (new, finalize, set-commits, deploys, list, info,
delete), the organization's repositories that ``set-commits --commit`` looks up, and the
issue and event endpoints scripts use most (list, events of an issue, event detail, status
changes). Field names and shapes follow docs.sentry.io/api; callers authenticate with an API
token as ``Authorization: Bearer <token>``.

List endpoints paginate as Sentry's do: a ``cursor`` parameter and a ``Link`` header with a
``rel="previous"`` and a ``rel="next"`` link, each saying whether it has ``results``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from spyglass.errors import releases as rel
from spyglass.errors.normalize import parse_timestamp
from spyglass.errors.releases import Deploy, Release, ReleaseError, ReleaseProject, Repository
from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.deps import Caller, api_caller, db_session, org_access
from spyglass.kernel.meta.models import Organization, Project, Role

router = APIRouter(prefix="/api/0", tags=["sentry-compatible"])

MAX_PER_PAGE = 100


# -- helpers ---------------------------------------------------------------------------------


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


def iso(value: dt.datetime | None) -> str | None:
    """Sentry's timestamps: ISO 8601 in UTC with a ``Z``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_date(value: Any, field: str) -> dt.datetime | None:
    """An RFC 3339 date as clients send it (sentry-cli sends nanoseconds) → aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = _FRACTION.sub(r"\1", value)
    parsed = parse_timestamp(value)
    if parsed is None:
        raise HTTPException(400, f"{field}: not a valid date")
    return parsed.replace(tzinfo=dt.UTC)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, "body must be a JSON object")
    return body


class Page:
    """Sentry's offset cursors, ``<per_page>:<page>:<is_prev>``, and the ``Link`` header."""

    def __init__(self, request: Request, default: int = MAX_PER_PAGE) -> None:
        self.request = request
        try:
            self.limit = max(1, min(MAX_PER_PAGE, int(request.query_params.get("per_page",
                                                                               default))))
        except ValueError:
            raise HTTPException(400, "per_page must be a number") from None
        self.number = 0
        cursor = request.query_params.get("cursor") or ""
        if cursor:
            parts = cursor.split(":")
            try:
                self.number = max(0, int(parts[1]))
            except (IndexError, ValueError):
                raise HTTPException(400, f"invalid cursor {cursor!r}") from None

    @property
    def offset(self) -> int:
        return self.number * self.limit

    def cursor(self, number: int, is_prev: bool) -> str:
        return f"{self.limit}:{max(0, number)}:{int(is_prev)}"

    def link(self, has_next: bool) -> str:
        def one(rel_: str, cursor: str, results: bool) -> str:
            url = self.request.url.include_query_params(cursor=cursor)
            return (f'<{url}>; rel="{rel_}"; results="{"true" if results else "false"}"; '
                    f'cursor="{cursor}"')

        return ", ".join([one("previous", self.cursor(self.number - 1, True), self.number > 0),
                          one("next", self.cursor(self.number + 1, False), has_next)])

    def reply(self, items: Sequence[Any], has_next: bool) -> Response:
        return reply(list(items), headers={"Link": self.link(has_next)})

    def slice(self, items: Sequence[Any]) -> Response:
        """Reply with this page of a complete list."""
        chunk = items[self.offset:self.offset + self.limit]
        return self.reply(chunk, self.offset + self.limit < len(items))


def _project(db: Session, org: Organization, slug: str) -> Project:
    project = db.scalar(select(Project).where(Project.org_id == org.id, Project.slug == slug))
    if project is None:
        raise HTTPException(404, "The requested resource does not exist")
    return project


def _release(db: Session, org: Organization, version: str) -> Release:
    release = rel.find(db, org.id, version)
    if release is None:
        raise HTTPException(404, "The requested resource does not exist")
    return release


def _store(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.runtime.store


# -- serializers -----------------------------------------------------------------------------


def project_json(project: Project) -> dict[str, Any]:
    return {"id": str(project.id), "slug": project.slug, "name": project.name,
            "platform": project.platform or None}


def version_info(version: str) -> dict[str, Any]:
    """Sentry's reading of ``package@version+build``."""
    package, _, rest = version.rpartition("@")
    raw, _, build = rest.partition("+")
    return {"package": package or None, "version": {"raw": raw},
            "description": raw + (f" ({build})" if build else ""), "buildHash": build or None}


def commit_json(commit: dict[str, Any], repos: dict[str, Repository]) -> dict[str, Any]:
    repo = repos.get(str(commit.get("repository") or ""))
    author = None
    if commit.get("author_email") or commit.get("author_name"):
        author = {"name": commit.get("author_name"), "email": commit.get("author_email")}
    return {"id": commit["id"], "message": commit.get("message"),
            "dateCreated": commit.get("timestamp"), "author": author,
            "repository": repo_json(repo) if repo else None}


def deploy_json(deploy: Deploy) -> dict[str, Any]:
    return {"id": str(deploy.id), "environment": deploy.environment, "name": deploy.name,
            "url": deploy.url, "dateStarted": iso(deploy.date_started),
            "dateFinished": iso(deploy.date_finished)}


def repo_json(repo: Repository) -> dict[str, Any]:
    provider = repo.provider or "integrations:custom"
    return {"id": str(repo.id), "name": repo.name, "url": repo.url,
            "provider": {"id": provider, "name": provider.rpartition(":")[2].title()},
            "status": "active", "dateCreated": iso(repo.date_created), "integrationId": None,
            "externalSlug": None, "externalId": None}


def _repos(db: Session, org_id: int) -> dict[str, Repository]:
    return {r.name: r for r in db.scalars(select(Repository).where(Repository.org_id == org_id))}


def release_json(db: Session, request: Request, release: Release,
                 projects: list[Project] | None = None, health: bool = False) -> dict[str, Any]:
    """A release as Sentry serializes it; ``health`` adds each project's ``healthData``."""
    projects = projects if projects is not None else [rp.project for rp in release.projects]
    commits = rel.shown_commits(release)
    repos = _repos(db, release.org_id) if commits else {}
    store = _store(request)
    out_projects, new_groups = [], 0
    for project in projects:
        n = rel.new_issue_counts(db, project.id).get(release.version, 0)
        new_groups += n
        entry = {**project_json(project), "newGroups": n,
                 "platforms": [project.platform] if project.platform else []}
        if health:
            rows = rel.health(store, project.id, (), release=release.version)
            h = rows[0] if rows else rel.Health()
            entry["hasHealthData"] = h.sessions > 0
            entry["healthData"] = {
                "totalSessions": h.sessions, "sessionsCrashed": h.crashed,
                "sessionsErrored": h.errored, "sessionsAbnormal": h.abnormal,
                "totalUsers": h.users, "usersCrashed": h.crashed_users,
                "crashFreeSessions": h.crash_free_sessions, "crashFreeUsers": h.crash_free_users,
                "adoption": rel.adoption(store, project.id).get(release.version),
                "hasHealthData": h.sessions > 0,
            }
        out_projects.append(entry)
    deploys = release.deploys
    return {
        "id": release.id, "version": release.version, "shortVersion": release.version,
        "status": "open", "ref": release.ref, "url": release.url,
        "dateCreated": iso(release.date_created), "dateStarted": iso(release.date_started),
        "dateReleased": iso(release.date_released), "data": {}, "newGroups": new_groups,
        "owner": None, "commitCount": len(commits),
        "lastCommit": commit_json(commits[0], repos) if commits else None,
        "deployCount": len(deploys), "lastDeploy": deploy_json(deploys[-1]) if deploys else None,
        "authors": [{"name": a.get("name"), "email": a.get("email")}
                    for a in release.authors or []],
        "projects": out_projects, "firstEvent": None, "lastEvent": None,
        "currentProjectMeta": {}, "userAgent": request.headers.get("user-agent"),
        "versionInfo": version_info(release.version),
    }


# -- releases --------------------------------------------------------------------------------


def _projects_by_slug(db: Session, org: Organization, slugs: Any) -> list[Project]:
    if slugs is None:
        return []
    if not isinstance(slugs, list) or not all(isinstance(x, str) for x in slugs):
        raise HTTPException(400, "projects must be a list of project slugs")
    return [_project(db, org, slug) for slug in slugs]


def _apply(db: Session, release: Release, body: dict[str, Any]) -> None:
    """Fields of a create or update body (what ``sentry-cli`` and Sentry's docs send)."""
    for key, attr in (("ref", "ref"), ("url", "url")):
        if key in body:
            value = body[key]
            setattr(release, attr, str(value)[:1000] if value else None)
    if "dateReleased" in body:
        release.date_released = parse_date(body["dateReleased"], "dateReleased")
    if "dateStarted" in body:
        release.date_started = parse_date(body["dateStarted"], "dateStarted")
    try:
        if isinstance(body.get("refs"), list):
            rel.set_refs(db, release, body["refs"])
        if isinstance(body.get("commits"), list):
            rel.add_commits(db, release, body["commits"])
    except ReleaseError as exc:
        raise HTTPException(400, str(exc)) from exc


def _org_releases(db: Session, request: Request, org: Organization,
                  projects: list[Project]) -> list[Release]:
    store = _store(request)
    for project in projects:
        rel.sync_observed(db, store, project)
    query = select(Release).where(Release.org_id == org.id)
    if projects:
        query = query.where(Release.id.in_(
            select(ReleaseProject.release_id).where(
                ReleaseProject.project_id.in_([p.id for p in projects]))))
    text = request.query_params.get("query")
    if text:
        query = query.where(Release.version.contains(text, autoescape=True))
    return list(db.scalars(query.order_by(Release.date_created.desc(), Release.id.desc())))


@router.get("/organizations/{org}/releases/")
def list_org_releases(org: str, request: Request, caller: Caller = Depends(api_caller),
                      db: Session = Depends(db_session)) -> Response:
    organization, _ = org_access(db, caller, org, Role.viewer)
    ids = request.query_params.getlist("project")
    all_projects = accounts.projects_of(db, organization)
    chosen = [p for p in all_projects if str(p.id) in ids] if ids else all_projects
    page = Page(request)
    items = _org_releases(db, request, organization, chosen)
    health = request.query_params.get("health") in ("1", "true")
    chunk = items[page.offset:page.offset + page.limit]
    scoped = {p.id for p in chosen}
    return page.reply(
        [release_json(db, request, r, [rp.project for rp in r.projects
                                       if rp.project_id in scoped], health) for r in chunk],
        page.offset + page.limit < len(items))


@router.post("/organizations/{org}/releases/")
async def create_org_release(org: str, request: Request, caller: Caller = Depends(api_caller),
                             db: Session = Depends(db_session)) -> Response:
    body = await json_body(request)
    organization, _ = org_access(db, caller, org, Role.member)
    return _create(db, request, organization, body, _projects_by_slug(
        db, organization, body.get("projects")))


def _create(db: Session, request: Request, org: Organization, body: dict[str, Any],
            projects: list[Project]) -> Response:
    if not projects:
        raise HTTPException(400, "projects: a release needs at least one project")
    try:
        version = rel.check_version(str(body.get("version") or ""))
        release, created = rel.ensure(db, org.id, version, projects)
    except ReleaseError as exc:
        raise HTTPException(400, str(exc)) from exc
    _apply(db, release, body)
    db.flush()
    # Sentry answers 208 when the release already existed (and links the new projects).
    return reply(release_json(db, request, release), 201 if created else 208)


@router.get("/organizations/{org}/releases/{version}/")
def get_org_release(org: str, version: str, request: Request,
                    caller: Caller = Depends(api_caller),
                    db: Session = Depends(db_session)) -> Response:
    organization, _ = org_access(db, caller, org, Role.viewer)
    release = _release(db, organization, version)
    health = request.query_params.get("health") in ("1", "true")
    return reply(release_json(db, request, release, health=health))


@router.put("/organizations/{org}/releases/{version}/")
async def update_org_release(org: str, version: str, request: Request,
                             caller: Caller = Depends(api_caller),
                             db: Session = Depends(db_session)) -> Response:
    body = await json_body(request)
    organization, _ = org_access(db, caller, org, Role.member)
    release = _release(db, organization, version)
    if body.get("projects") is not None:
        rel.ensure(db, organization.id, version,
                   _projects_by_slug(db, organization, body["projects"]))
    _apply(db, release, body)
    db.flush()
    db.refresh(release)
    return reply(release_json(db, request, release))


@router.delete("/organizations/{org}/releases/{version}/")
def delete_org_release(org: str, version: str, request: Request,
                       caller: Caller = Depends(api_caller),
                       db: Session = Depends(db_session)) -> Response:
    organization, _ = org_access(db, caller, org, Role.admin)
    release = _release(db, organization, version)
    store = _store(request)
    for rp in release.projects:
        used = store.scalar(
            "SELECT count(*) FROM events WHERE project_id = {p:UInt64} AND release = {v:String}",
            {"p": rp.project_id, "v": version}) or store.scalar(
            "SELECT count(*) FROM sessions WHERE project_id = {p:UInt64} AND release = {v:String}",
            {"p": rp.project_id, "v": version})
        if used:
            raise HTTPException(400, "This release is referenced by events or sessions and "
                                     "cannot be removed.")
    db.delete(release)
    return Response(status_code=204)


@router.get("/organizations/{org}/releases/{version}/deploys/")
def list_deploys(org: str, version: str, request: Request, caller: Caller = Depends(api_caller),
                 db: Session = Depends(db_session)) -> Response:
    organization, _ = org_access(db, caller, org, Role.viewer)
    release = _release(db, organization, version)
    return Page(request).slice([deploy_json(d) for d in reversed(release.deploys)])


@router.post("/organizations/{org}/releases/{version}/deploys/")
async def create_deploy(org: str, version: str, request: Request,
                        caller: Caller = Depends(api_caller),
                        db: Session = Depends(db_session)) -> Response:
    body = await json_body(request)
    organization, _ = org_access(db, caller, org, Role.member)
    release = _release(db, organization, version)
    environment = str(body.get("environment") or "").strip()
    if not environment or len(environment) > 64:
        raise HTTPException(400, "environment: required, at most 64 characters")
    if body.get("projects") is not None:
        rel.ensure(db, organization.id, version,
                   _projects_by_slug(db, organization, body["projects"]))
    finished = parse_date(body.get("dateFinished"), "dateFinished") or rel.utcnow()
    deploy = Deploy(release_id=release.id, environment=environment,
                    name=(str(body["name"])[:200] if body.get("name") else None),
                    url=(str(body["url"])[:1000] if body.get("url") else None),
                    date_started=parse_date(body.get("dateStarted"), "dateStarted"),
                    date_finished=finished)
    db.add(deploy)
    db.flush()
    return reply(deploy_json(deploy), 201)


@router.get("/organizations/{org}/releases/{version}/commits/")
def list_commits(org: str, version: str, request: Request, caller: Caller = Depends(api_caller),
                 db: Session = Depends(db_session)) -> Response:
    organization, _ = org_access(db, caller, org, Role.viewer)
    release = _release(db, organization, version)
    repos = _repos(db, organization.id)
    return Page(request).slice([commit_json(c, repos) for c in rel.shown_commits(release)])


@router.get("/organizations/{org}/releases/{version}/previous-with-commits/")
def previous_with_commits(org: str, version: str, request: Request,
                          caller: Caller = Depends(api_caller),
                          db: Session = Depends(db_session)) -> Response:
    """The latest older release that has commits; ``set-commits --local`` starts after it."""
    organization, _ = org_access(db, caller, org, Role.viewer)
    release = _release(db, organization, version)
    older = db.scalars(select(Release).where(
        Release.org_id == organization.id, Release.id != release.id,
        Release.date_created <= release.date_created,
    ).order_by(Release.date_created.desc(), Release.id.desc())).all()
    for candidate in older:
        if rel.shown_commits(candidate):
            return reply(release_json(db, request, candidate))
    return reply({})


@router.get("/projects/{org}/{project}/releases/")
def list_project_releases(org: str, project: str, request: Request,
                          caller: Caller = Depends(api_caller),
                          db: Session = Depends(db_session)) -> Response:
    organization, _ = org_access(db, caller, org, Role.viewer)
    proj = _project(db, organization, project)
    page = Page(request)
    items = _org_releases(db, request, organization, [proj])
    health = request.query_params.get("health") in ("1", "true")
    chunk = items[page.offset:page.offset + page.limit]
    return page.reply([release_json(db, request, r, [proj], health) for r in chunk],
                      page.offset + page.limit < len(items))


@router.post("/projects/{org}/{project}/releases/")
async def create_project_release(org: str, project: str, request: Request,
                                 caller: Caller = Depends(api_caller),
                                 db: Session = Depends(db_session)) -> Response:
    body = await json_body(request)
    organization, _ = org_access(db, caller, org, Role.member)
    return _create(db, request, organization, body, [_project(db, organization, project)])


@router.get("/projects/{org}/{project}/releases/{version}/")
def get_project_release(org: str, project: str, version: str, request: Request,
                        caller: Caller = Depends(api_caller),
                        db: Session = Depends(db_session)) -> Response:
    organization, _ = org_access(db, caller, org, Role.viewer)
    proj = _project(db, organization, project)
    release = _release(db, organization, version)
    if proj.id not in {rp.project_id for rp in release.projects}:
        raise HTTPException(404, "The requested resource does not exist")
    health = request.query_params.get("health") in ("1", "true")
    return reply(release_json(db, request, release, [proj], health))


# -- repositories ----------------------------------------------------------------------------


@router.get("/organizations/{org}/repos/")
def list_repos(org: str, request: Request, caller: Caller = Depends(api_caller),
               db: Session = Depends(db_session)) -> Response:
    organization, _ = org_access(db, caller, org, Role.viewer)
    repos = db.scalars(select(Repository).where(Repository.org_id == organization.id)
                       .order_by(Repository.name)).all()
    return Page(request).slice([repo_json(r) for r in repos])


@router.post("/organizations/{org}/repos/")
async def create_repo(org: str, request: Request, caller: Caller = Depends(api_caller),
                      db: Session = Depends(db_session)) -> Response:
    body = await json_body(request)
    organization, _ = org_access(db, caller, org, Role.admin)
    name = str(body.get("name") or "").strip()
    if not name or len(name) > 200:
        raise HTTPException(400, "name: required, at most 200 characters")
    if db.scalar(select(Repository).where(Repository.org_id == organization.id,
                                          Repository.name == name)):
        raise HTTPException(400, "A repository with that name already exists")
    repo = rel.ensure_repository(db, organization.id, name, str(body.get("url") or "") or None,
                                 str(body.get("provider") or ""))
    db.flush()
    return reply(repo_json(repo), 201)


def install(app: FastAPI) -> None:
    app.include_router(router)
