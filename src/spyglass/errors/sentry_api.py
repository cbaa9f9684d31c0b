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

from spyglass.errors import queries
from spyglass.errors import releases as rel
from spyglass.errors import search as searching
from spyglass.errors.models import Issue, IssueStatus
from spyglass.errors.normalize import parse_timestamp
from spyglass.errors.releases import Deploy, Release, ReleaseError, ReleaseProject, Repository
from spyglass.errors.state import Change, StateError, change_status
from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.deps import Caller, api_caller, db_session, org_access, project_access
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

    def __init__(self, request: Request, default: int = MAX_PER_PAGE,
                 offset_cursor: bool = True) -> None:
        self.request = request
        try:
            asked = request.query_params.get("per_page") or request.query_params.get("limit")
            self.limit = max(1, min(MAX_PER_PAGE, int(asked or default)))
        except ValueError:
            raise HTTPException(400, "per_page/limit must be a number") from None
        self.number = 0
        cursor = request.query_params.get("cursor") or ""
        if cursor and offset_cursor:
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


# -- issues ----------------------------------------------------------------------------------

#: Sentry's ``sort`` values → the issue list's.
SORTS = {"date": "last_seen", "new": "first_seen", "freq": "events", "user": "users",
         "priority": "last_seen", "trends": "last_seen"}
#: The list's window when ``statsPeriod`` names none: everything a project keeps by default.
LIST_PERIOD = "90d"


def _issue(db: Session, caller: Caller, org: str, issue_id: str,
           need: Role) -> tuple[Organization, Project, Issue]:
    organization, _ = org_access(db, caller, org, need)
    issue = db.get(Issue, int(issue_id)) if issue_id.isdigit() and len(issue_id) < 12 else None
    project = db.get(Project, issue.project_id) if issue is not None else None
    if issue is None or project is None or project.org_id != organization.id:
        raise HTTPException(404, "The requested resource does not exist")
    return organization, project, issue


def _permalink(request: Request, org: Organization, project: Project, issue: Issue) -> str:
    base = request.app.state.runtime.settings.public_url
    return (f"{base}/o/{org.slug}/p/{project.slug}/issues/"
            f"{queries.format_short_id(project.slug, issue.short_id)}")


def status_details(issue: Issue) -> dict[str, Any]:
    if issue.status == IssueStatus.resolved.value and issue.resolved_in_release:
        return {"inNextRelease": True, "inRelease": issue.resolved_in_release}
    if issue.status == IssueStatus.ignored.value:
        out: dict[str, Any] = {}
        if issue.ignore_until is not None:
            out["ignoreUntil"] = iso(issue.ignore_until)
        if issue.ignore_count:
            out["ignoreCount"] = issue.ignore_count
        return out
    return {}


def _substatus(issue: Issue) -> str | None:
    if issue.status == IssueStatus.resolved.value:
        return None
    if issue.status == IssueStatus.ignored.value:
        conditional = issue.ignore_until is not None or issue.ignore_count
        return "archived_until_condition_met" if conditional else "archived_forever"
    return issue.substatus or "ongoing"


def issue_json(request: Request, org: Organization, project: Project, issue: Issue, *,
               events: int, users: int, first_seen: dt.datetime | None,
               last_seen: dt.datetime | None, stats: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """An issue as Sentry's issue list and issue endpoints show it."""
    meta = dict(issue.meta or {})
    is_error = "type" in meta
    first_seen = queries.naive(first_seen or issue.first_seen)
    if first_seen is not None and last_seen is not None and last_seen < first_seen:
        # The issue row records when the server saw it; events carry the client's clock.
        first_seen = last_seen
    out = {
        "id": str(issue.id), "shortId": queries.format_short_id(project.slug, issue.short_id),
        "title": issue.title, "culprit": issue.culprit, "level": issue.level,
        "status": issue.status, "statusDetails": status_details(issue),
        "substatus": _substatus(issue), "type": "error" if is_error else "default",
        "metadata": meta, "platform": project.platform or None, "logger": None,
        "count": str(events), "userCount": users,
        "firstSeen": iso(first_seen), "lastSeen": iso(last_seen),
        "permalink": _permalink(request, org, project, issue),
        "project": {"id": str(project.id), "slug": project.slug, "name": project.name,
                    "platform": project.platform or None},
        "numComments": 0, "assignedTo": None, "isBookmarked": False, "isPublic": False,
        "isSubscribed": False, "hasSeen": False, "annotations": [], "shareId": None,
        "isUnhandled": meta.get("handled") is False if "handled" in meta else None,
    }
    if stats is not None:
        out["stats"] = stats
    return out


def _stats(series: queries.Series | None, period: str) -> dict[str, Any]:
    if series is None:
        return {period: []}
    return {period: [[int(s.replace(tzinfo=dt.UTC).timestamp()), n]
                     for s, n in zip(series.starts, series.counts)]}


@router.get("/projects/{org}/{project}/issues/")
def list_issues(org: str, project: str, request: Request, caller: Caller = Depends(api_caller),
                db: Session = Depends(db_session)) -> Response:
    """Sentry's "List a Project's Issues": search syntax in ``query`` (default is:unresolved)."""
    organization, _ = org_access(db, caller, org, Role.viewer)
    proj = _project(db, organization, project)
    params = request.query_params
    query = params.get("query", searching.DEFAULT_QUERY)
    stats_period = params.get("statsPeriod", "24h")
    if stats_period not in ("", "24h", "14d"):
        raise HTTPException(400, 'statsPeriod: one of "24h", "14d" or ""')
    page = Page(request, default=25)
    store = _store(request)
    try:
        found = queries.search_issues(
            db, store, proj.id, proj.slug, query, period=LIST_PERIOD,
            environment=params.get("environment") or None,
            sort=SORTS.get(params.get("sort", "date"), "last_seen"),
            offset=page.offset, limit=page.limit)
    except searching.SearchError as exc:
        raise HTTPException(400, f"Error parsing search query: {exc}") from exc
    series = (queries.series_for(store, proj.id, [r.issue.id for r in found.rows], stats_period)
              if stats_period else {})
    items = [issue_json(request, organization, proj, r.issue, events=r.events, users=r.users,
                        first_seen=r.first_seen, last_seen=r.last_seen,
                        stats=_stats(series.get(r.issue.id), stats_period)
                        if stats_period else None)
             for r in found.rows]
    return page.reply(items, found.next_offset is not None)


def _one_issue_json(request: Request, db: Session, org: Organization, project: Project,
                    issue: Issue) -> dict[str, Any]:
    st = queries.issue_stats(_store(request), project.id, issue.id)
    out = issue_json(request, org, project, issue, events=st.events, users=st.users,
                     first_seen=st.first_seen or issue.first_seen, last_seen=st.last_seen)
    out["firstRelease"] = {"version": issue.first_release} if issue.first_release else None
    out["lastRelease"] = {"version": st.last_release} if st.last_release else None
    return out


@router.get("/organizations/{org}/issues/{issue_id}/")
def get_issue(org: str, issue_id: str, request: Request, caller: Caller = Depends(api_caller),
              db: Session = Depends(db_session)) -> Response:
    organization, project, issue = _issue(db, caller, org, issue_id, Role.viewer)
    return reply(_one_issue_json(request, db, organization, project, issue))


def _change(body: dict[str, Any]) -> Change | None:
    """The status change a Sentry update body asks for; None when it asks for none."""
    status = body.get("status")
    details = body.get("statusDetails") if isinstance(body.get("statusDetails"), dict) else {}
    if status is None:
        return None
    if status == "resolvedInNextRelease":
        return Change(IssueStatus.resolved, in_next_release=True)
    if status == "resolved":
        return Change(IssueStatus.resolved, in_next_release=bool(details.get("inNextRelease")))
    if status in ("ignored", "muted", "archived"):
        def number(key: str) -> int | None:
            value = details.get(key)
            if value is None:
                return None
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise HTTPException(400, f"statusDetails.{key} must be a positive integer")
            return value
        return Change(IssueStatus.ignored, ignore_minutes=number("ignoreDuration"),
                      ignore_count=number("ignoreCount"))
    if status == "unresolved":
        return Change(IssueStatus.unresolved)
    raise HTTPException(400, f"status: {status!r} is not one of resolved, "
                             "resolvedInNextRelease, ignored, unresolved")


def _apply_change(request: Request, db: Session, issue: Issue, change: Change) -> None:
    try:
        change_status(db, _store(request), issue, change)
    except StateError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.put("/organizations/{org}/issues/{issue_id}/")
async def update_issue(org: str, issue_id: str, request: Request,
                       caller: Caller = Depends(api_caller),
                       db: Session = Depends(db_session)) -> Response:
    """Sentry's "Update an Issue": status changes (resolve, in next release, ignore, reopen)."""
    body = await json_body(request)
    organization, project, issue = _issue(db, caller, org, issue_id, Role.member)
    change = _change(body)
    if change is not None:
        _apply_change(request, db, issue, change)
    return reply(_one_issue_json(request, db, organization, project, issue))


def _issue_anywhere(db: Session, caller: Caller, issue_id: str, need: Role) -> str:
    """The organization slug of an issue the caller may see (for the unscoped legacy paths)."""
    issue = db.get(Issue, int(issue_id)) if issue_id.isdigit() and len(issue_id) < 12 else None
    if issue is None:
        raise HTTPException(404, "The requested resource does not exist")
    project, _ = project_access(db, caller, issue.project_id, need)
    return project.organization.slug


@router.get("/issues/{issue_id}/")
def get_issue_legacy(issue_id: str, request: Request, caller: Caller = Depends(api_caller),
                     db: Session = Depends(db_session)) -> Response:
    """``/api/0/issues/{id}/``: the older, organization-less path that many scripts use."""
    return get_issue(_issue_anywhere(db, caller, issue_id, Role.viewer), issue_id, request,
                     caller, db)


@router.put("/issues/{issue_id}/")
async def update_issue_legacy(issue_id: str, request: Request,
                              caller: Caller = Depends(api_caller),
                              db: Session = Depends(db_session)) -> Response:
    org = _issue_anywhere(db, caller, issue_id, Role.viewer)
    return await update_issue(org, issue_id, request, caller, db)


@router.put("/projects/{org}/{project}/issues/")
async def bulk_update_issues(org: str, project: str, request: Request,
                             caller: Caller = Depends(api_caller),
                             db: Session = Depends(db_session)) -> Response:
    """Sentry's "Bulk Mutate a List of Issues", for ``?id=1&id=2`` (at most 1000)."""
    body = await json_body(request)
    organization, _ = org_access(db, caller, org, Role.member)
    proj = _project(db, organization, project)
    ids = request.query_params.getlist("id")
    if not ids:
        raise HTTPException(400, "name the issues to change with ?id=...; updating every "
                                 "issue matching a query is not supported")
    if len(ids) > 1000 or not all(i.isdigit() and len(i) < 12 for i in ids):
        raise HTTPException(400, "id: at most 1000 numeric issue ids")
    issues = list(db.scalars(select(Issue).where(Issue.project_id == proj.id,
                                                 Issue.id.in_([int(i) for i in ids]))))
    if not issues:
        return Response(status_code=204)
    change = _change(body)
    if change is None:
        raise HTTPException(400, "status: required")
    for issue in issues:
        _apply_change(request, db, issue, change)
    return reply({"status": issues[0].status, "statusDetails": status_details(issues[0]),
                  "substatus": _substatus(issues[0])})


# -- events ----------------------------------------------------------------------------------


def _tags(data: dict[str, Any]) -> list[dict[str, str]]:
    tags = data.get("tags") or []
    pairs = tags.items() if isinstance(tags, dict) else (
        t for t in tags if isinstance(t, (list, tuple)) and len(t) == 2)
    return [{"key": str(k), "value": str(v)} for k, v in pairs]


def event_json(event: queries.EventSummary, project_id: int,
               data: dict[str, Any] | None = None) -> dict[str, Any]:
    """An event as in Sentry's event lists; with ``data`` (the stored JSON), as in its details."""
    data = data or {}
    out: dict[str, Any] = {
        "id": event.event_id, "eventID": event.event_id, "groupID": str(event.issue_id),
        "projectID": str(project_id), "title": event.title, "message": event.message,
        "dateCreated": iso(event.timestamp), "dateReceived": iso(event.received_at),
        "platform": event.platform or None, "culprit": event.culprit,
        "event.type": "error" if event.exception_type else "default",
        "location": event.culprit or None, "crashFile": None,
        "user": data.get("user") if isinstance(data.get("user"), dict) else None,
        "tags": _tags(data),
    }
    return out


def _entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Sentry's ``entries``: exception, message, breadcrumbs, request, threads."""
    entries = []
    exc = data.get("exception")
    if isinstance(exc, dict) and exc.get("values"):
        entries.append({"type": "exception", "data": {"values": exc["values"],
                                                      "hasSystemFrames": True}})
    message = data.get("logentry") or data.get("message")
    if message:
        formatted = message.get("formatted") or message.get("message") if isinstance(
            message, dict) else str(message)
        entries.append({"type": "message", "data": {"formatted": formatted}})
    crumbs = data.get("breadcrumbs")
    if isinstance(crumbs, dict) and crumbs.get("values"):
        entries.append({"type": "breadcrumbs", "data": {"values": crumbs["values"]}})
    if isinstance(data.get("request"), dict):
        entries.append({"type": "request", "data": data["request"]})
    threads = data.get("threads")
    if isinstance(threads, dict) and threads.get("values"):
        entries.append({"type": "threads", "data": {"values": threads["values"]}})
    return entries


def event_detail_json(event: queries.StoredEvent, project_id: int) -> dict[str, Any]:
    data = event.data
    out = event_json(event, project_id, data)
    out.update({
        "type": out["event.type"], "entries": _entries(data),
        "contexts": data.get("contexts") or {}, "sdk": data.get("sdk"),
        "fingerprints": data.get("fingerprint") or [], "errors": [],
        "metadata": {"type": event.exception_type, "value": event.exception_value}
        if event.exception_type else {"title": event.title},
        "release": {"version": event.release, "shortVersion": event.release}
        if event.release else None,
        "environment": event.environment or None, "dist": data.get("dist"),
        "size": len(orjson.dumps(data)), "packages": data.get("modules") or {},
        "extra": data.get("extra") or {}, "logger": data.get("logger"),
    })
    return out


def _event_page(store: Any, project_id: int, issue_id: int, cursor: str, limit: int,
                query: str, environment: str | None) -> tuple[list[queries.StoredEvent],
                                                              str | None, str | None]:
    """A page of an issue's events, newest first, with Sentry-style cursors both ways.

    A cursor is ``<epoch µs>:<event id>:<is_prev>``: the page after (or, with is_prev=1,
    before) that event. Returns the events and the next and previous cursors (None when
    there is nothing that way).
    """
    found = searching.parse(query)
    conditions, params = searching.event_conditions(found, store.dialect)
    if environment:
        conditions.append("environment = {env:String}")
        params["env"] = environment
    params.update({"p": project_id, "i": issue_id})
    base = " AND ".join(["project_id = {p:UInt64}", "issue_id = {i:UInt64}", *conditions])
    older = ("(timestamp < {ts:DateTime64(6)} OR (timestamp = {ts:DateTime64(6)} "
             "AND event_id < {eid:String}))")
    newer = ("(timestamp > {ts:DateTime64(6)} OR (timestamp = {ts:DateTime64(6)} "
             "AND event_id > {eid:String}))")
    at = _parse_event_cursor(cursor)
    cols = queries.EVENT_COLUMNS

    def fetch(cond: str, order: str, p: dict[str, Any], n: int) -> list[dict[str, Any]]:
        where = base + (f" AND {cond}" if cond else "")
        return store.rows(f"SELECT {cols}, data FROM events WHERE {where} "
                          f"ORDER BY timestamp {order}, event_id {order} LIMIT {n}", p)

    if at is not None and at[2]:
        rows = fetch(newer, "ASC", {**params, "ts": at[0], "eid": at[1]}, limit + 1)
        has_prev, rows = len(rows) > limit, list(reversed(rows[:limit]))
        has_next = True
    else:
        extra = {"ts": at[0], "eid": at[1]} if at else {}
        rows = fetch(older if at else "", "DESC", {**params, **extra}, limit + 1)
        has_next, rows = len(rows) > limit, rows[:limit]
        has_prev = at is not None and bool(rows) and bool(fetch(
            newer, "DESC", {**params, "ts": rows[0]["timestamp"], "eid": rows[0]["event_id"]}, 1))
    events = [queries.StoredEvent(**{k: v for k, v in r.items() if k != "data"},
                                  data=_loads(r["data"])) for r in rows]
    if not events:
        return events, None, None
    nxt = _event_cursor(events[-1], False) if has_next else None
    prev = _event_cursor(events[0], True) if has_prev else None
    return events, nxt, prev


def _loads(raw: str | None) -> dict[str, Any]:
    try:
        data = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _event_cursor(event: queries.EventSummary, is_prev: bool) -> str:
    epoch_us = int(event.timestamp.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    return f"{epoch_us}:{event.event_id}:{int(is_prev)}"


def _parse_event_cursor(cursor: str) -> tuple[dt.datetime, str, bool] | None:
    if not cursor:
        return None
    parts = cursor.split(":")
    if (len(parts) != 3 or not parts[0].isdigit() or parts[2] not in ("0", "1")
            or queries.normalize_event_id(parts[1]) != parts[1]):
        raise HTTPException(400, f"invalid cursor {cursor!r}")
    ts = dt.datetime.fromtimestamp(int(parts[0]) / 1_000_000, dt.UTC).replace(tzinfo=None)
    return ts, parts[1], parts[2] == "1"


@router.get("/organizations/{org}/issues/{issue_id}/events/")
def list_issue_events(org: str, issue_id: str, request: Request,
                      caller: Caller = Depends(api_caller),
                      db: Session = Depends(db_session)) -> Response:
    """Sentry's "List an Issue's Events", newest first; ``full=true`` adds the details."""
    _, project, issue = _issue(db, caller, org, issue_id, Role.viewer)
    params = request.query_params
    page = Page(request, default=100, offset_cursor=False)
    store = _store(request)
    try:
        events, nxt, prev = _event_page(store, project.id, issue.id, params.get("cursor", ""),
                                        page.limit, params.get("query", ""),
                                        params.get("environment") or None)
    except searching.SearchError as exc:
        raise HTTPException(400, f"Error parsing search query: {exc}") from exc
    full = params.get("full") in ("1", "true")
    items = [event_detail_json(e, project.id) if full else event_json(e, project.id, e.data)
             for e in events]
    # Links with results="false" still carry a valid cursor (the page's own edge), as Sentry's.
    edges = ((_event_cursor(events[0], True), _event_cursor(events[-1], False))
             if events else ("", ""))

    def link(rel_: str, cursor: str | None, edge: str) -> str:
        value = cursor or edge
        url = request.url.include_query_params(cursor=value)
        return (f'<{url}>; rel="{rel_}"; results="{"true" if cursor else "false"}"; '
                f'cursor="{value}"')

    header = ", ".join([link("previous", prev, edges[0]), link("next", nxt, edges[1])])
    return reply(items, headers={"Link": header})


@router.get("/projects/{org}/{project}/events/{event_id}/")
def get_project_event(org: str, project: str, event_id: str, request: Request,
                      caller: Caller = Depends(api_caller),
                      db: Session = Depends(db_session)) -> Response:
    """Sentry's "Retrieve an Event for a Project"."""
    organization, _ = org_access(db, caller, org, Role.viewer)
    proj = _project(db, organization, project)
    store = _store(request)
    event = queries.get_event(store, proj.id, event_id)
    if event is None:
        raise HTTPException(404, "Event not found")
    out = event_detail_json(event, proj.id)
    nb = queries.neighbors(store, proj.id, event)
    out["previousEventID"], out["nextEventID"] = nb.older, nb.newer
    return reply(out)
