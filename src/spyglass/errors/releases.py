"""Releases and release health.

A release is a version of the code, scoped to an organization as in Sentry and linked to the
projects that ship it. Releases are created by ``sentry-cli`` / the Sentry API (with refs,
commits and deploys), or appear by themselves when events or sessions name a version no one
announced.

Release health is computed from the ``sessions`` table when asked, from both session modes:

- individual sessions (``session`` items, one row per update): each session counts once, with
  its worst state over all its updates: crashed, else abnormal, else errored (an ``errored``
  status or ``errors > 0``), else healthy;
- pre-aggregated sessions (``sessions`` items, ``session_id = ''``): ``quantity`` sessions per
  row, already in their final state.

Crash-free sessions = 1 - crashed / sessions; crash-free users = 1 - users with a crashed
session / users (only sessions that carry a ``did`` know their user). Adoption is a release's
share of the sessions of the last 24 hours (of its environment when one is chosen). Sentry
counts abnormal sessions apart from crashes, and so do we.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from spyglass.errors.models import Issue
from spyglass.errors.schema import SESSIONS
from spyglass.kernel.auth.deps import (
    Caller,
    api_caller,
    db_session,
    page_caller,
    project_access,
)
from spyglass.kernel.auth.deps import project_by_slug as _page_project
from spyglass.kernel.meta.models import Base, Project, Role, UTCDateTime, utcnow
from spyglass.kernel.telemetry import TelemetryStore
from spyglass.kernel.web import templating

MAX_VERSION = 200
ADOPTION_WINDOW = dt.timedelta(hours=24)


# -- metadata --------------------------------------------------------------------------------


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("org_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(MAX_VERSION))
    ref: Mapped[str | None] = mapped_column(String(250), nullable=True)
    url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    date_created: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    date_started: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Set when the release is finalized (``sentry-cli releases finalize``).
    date_released: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: ``[{"repository", "commit", "previousCommit"}]`` as ``set-commits --commit`` sends them.
    refs: Mapped[list] = mapped_column(JSON, default=list)  # type: ignore[type-arg]
    #: ``[{"id", "repository", "message", "author_name", "author_email", "timestamp"}]``.
    commits: Mapped[list] = mapped_column(JSON, default=list)  # type: ignore[type-arg]
    #: ``[{"name", "email"}]``, distinct authors of the commits.
    authors: Mapped[list] = mapped_column(JSON, default=list)  # type: ignore[type-arg]
    projects: Mapped[list[ReleaseProject]] = relationship(
        back_populates="release", cascade="all, delete-orphan")
    deploys: Mapped[list[Deploy]] = relationship(
        back_populates="release", cascade="all, delete-orphan", order_by="Deploy.id")


class ReleaseProject(Base):
    __tablename__ = "release_projects"
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    release: Mapped[Release] = relationship(back_populates="projects")
    project: Mapped[Project] = relationship()


class Deploy(Base):
    __tablename__ = "release_deploys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    environment: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    date_started: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    date_finished: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    release: Mapped[Release] = relationship(back_populates="deploys")


class Repository(Base):
    """A code repository of an organization; ``set-commits --commit repo@sha`` names one."""

    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    provider: Mapped[str] = mapped_column(String(64), default="")
    date_created: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReleaseError(ValueError):
    """A release request that cannot be honoured; the message is shown to the caller."""


def check_version(version: str) -> str:
    """Sentry's rules: no slashes or line breaks, not '.', '..' or blank, at most 200 chars."""
    if not version or version.strip() != version or version in (".", ".."):
        raise ReleaseError("version must not be empty, '.', '..' or start/end with spaces")
    if len(version) > MAX_VERSION:
        raise ReleaseError(f"version is longer than {MAX_VERSION} characters")
    if any(c in version for c in "/\\\n\r\t"):
        raise ReleaseError("version must not contain slashes, tabs or line breaks")
    return version


def find(s: Session, org_id: int, version: str) -> Release | None:
    return s.scalar(select(Release).where(Release.org_id == org_id, Release.version == version))


def ensure(s: Session, org_id: int, version: str, projects: list[Project],
           date_created: dt.datetime | None = None) -> tuple[Release, bool]:
    """The organization's release ``version`` linked to ``projects``; True when it is new.

    Two processes may create the same release at once; the unique constraint decides and the
    loser reads the winner's row.
    """
    release, created = find(s, org_id, version), False
    if release is None:
        try:
            with s.begin_nested():
                release = Release(org_id=org_id, version=version, refs=[], commits=[],
                                  authors=[], date_created=date_created or utcnow())
                s.add(release)
            created = True
        except IntegrityError:
            release = find(s, org_id, version)
            if release is None:
                raise
    linked = {rp.project_id for rp in release.projects}
    for project in projects:
        if project.org_id != org_id:
            raise ReleaseError(f"project {project.slug!r} belongs to another organization")
        if project.id not in linked:
            try:
                with s.begin_nested():
                    s.add(ReleaseProject(release_id=release.id, project_id=project.id))
            except IntegrityError:
                pass
            linked.add(project.id)
    s.flush()
    s.refresh(release)
    return release, created


def releases_of_project(s: Session, project_id: int) -> list[Release]:
    """The project's releases, newest first."""
    return list(s.scalars(
        select(Release).join(ReleaseProject).where(ReleaseProject.project_id == project_id)
        .order_by(Release.date_created.desc(), Release.id.desc())))


def sync_observed(s: Session, store: TelemetryStore, project: Project) -> None:
    """Create the releases that events or sessions name but no one announced.

    Such a release starts when its first event or session arrived, as in Sentry.
    """
    rows = store.rows(
        "SELECT release AS version, min(received_at) AS first FROM events "
        "WHERE project_id = {p:UInt64} AND release != '' GROUP BY release "
        "UNION ALL SELECT release AS version, min(received_at) AS first FROM sessions "
        "WHERE project_id = {p:UInt64} AND release != '' GROUP BY release",
        {"p": project.id},
    )
    firsts: dict[str, dt.datetime] = {}
    for r in rows:
        first = r["first"].replace(tzinfo=dt.UTC)
        firsts[r["version"]] = min(first, firsts.get(r["version"], first))
    known = set(s.scalars(select(Release.version).join(ReleaseProject)
                          .where(ReleaseProject.project_id == project.id)))
    for version, first in sorted(firsts.items(), key=lambda kv: kv[1]):
        if version not in known and len(version) <= MAX_VERSION:
            ensure(s, project.org_id, version, [project], date_created=first)


def add_commits(s: Session, release: Release, commits: list[dict[str, Any]]) -> None:
    """Replace the release's commits (what ``set-commits --local/--auto`` sends)."""
    kept, authors = [], {}
    for c in commits[:10_000]:
        if not isinstance(c, dict) or not c.get("id"):
            continue
        kept.append({k: c.get(k) for k in ("id", "repository", "message", "author_name",
                                            "author_email", "timestamp")})
        email = str(c.get("author_email") or "")
        if email or c.get("author_name"):
            authors.setdefault(email or str(c.get("author_name")),
                               {"name": c.get("author_name") or email, "email": email})
        if c.get("repository"):
            ensure_repository(s, release.org_id, str(c["repository"]))
    release.commits, release.authors = kept, list(authors.values())


def set_refs(s: Session, release: Release, refs: list[dict[str, Any]]) -> None:
    """Record ``set-commits --commit repo@[from..]sha``; each ref becomes the head commit."""
    kept = []
    for ref in refs[:100]:
        if not isinstance(ref, dict) or not ref.get("repository") or not ref.get("commit"):
            raise ReleaseError("each ref needs a repository and a commit")
        repo = s.scalar(select(Repository).where(Repository.org_id == release.org_id,
                                                 Repository.name == str(ref["repository"])))
        if repo is None:
            raise ReleaseError(f"unknown repository {ref['repository']!r}")
        kept.append({"repository": repo.name, "commit": str(ref["commit"]),
                     "previousCommit": ref.get("previousCommit")})
    release.refs = kept


def shown_commits(release: Release) -> list[dict[str, Any]]:
    """The release's commits; with only refs known, each ref's head commit."""
    if release.commits:
        return list(release.commits)
    return [{"id": r["commit"], "repository": r["repository"], "message": None,
             "author_name": None, "author_email": None, "timestamp": None}
            for r in release.refs or []]


def ensure_repository(s: Session, org_id: int, name: str, url: str | None = None,
                      provider: str = "") -> Repository:
    repo = s.scalar(select(Repository).where(Repository.org_id == org_id, Repository.name == name))
    if repo is None:
        try:
            with s.begin_nested():
                repo = Repository(org_id=org_id, name=name[:200], url=url, provider=provider)
                s.add(repo)
        except IntegrityError:
            repo = s.scalar(select(Repository).where(Repository.org_id == org_id,
                                                     Repository.name == name))
            assert repo is not None
    return repo


def new_issue_counts(s: Session, project_id: int) -> dict[str, int]:
    """Issues first seen in each release (merged-away issues do not count)."""
    rows = s.execute(
        select(Issue.first_release, func.count()).where(
            Issue.project_id == project_id, Issue.merged_into_id.is_(None),
            Issue.first_release != "").group_by(Issue.first_release))
    return {version: n for version, n in rows}


def new_issues(s: Session, project_id: int, version: str, limit: int = 100) -> list[Issue]:
    return list(s.scalars(
        select(Issue).where(Issue.project_id == project_id, Issue.first_release == version,
                            Issue.merged_into_id.is_(None))
        .order_by(Issue.first_seen.desc()).limit(limit)))


# -- release health --------------------------------------------------------------------------


@dataclass
class Health:
    """Session counts of one group (a release, an environment, a time bucket ...)."""

    sessions: int = 0
    crashed: int = 0
    abnormal: int = 0
    errored: int = 0
    users: int = 0
    crashed_users: int = 0
    #: A release's share of the last 24 hours' sessions, in percent (None when unknown).
    adoption: float | None = None
    key: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> int:
        return self.sessions - self.crashed - self.abnormal - self.errored

    @property
    def crash_free_sessions(self) -> float | None:
        return _pct(self.sessions - self.crashed, self.sessions)

    @property
    def crash_free_users(self) -> float | None:
        return _pct(self.users - self.crashed_users, self.users)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 3) if whole else None


def _per_session_sql(where: str) -> str:
    """One row per session (individual updates rolled up) or per aggregate row."""
    flags = ("max(CASE WHEN status = 'crashed' THEN 1 ELSE 0 END) AS c, "
             "max(CASE WHEN status = 'abnormal' THEN 1 ELSE 0 END) AS a, "
             "max(CASE WHEN status = 'errored' OR errors > 0 THEN 1 ELSE 0 END) AS e")
    return (
        f"SELECT release AS rel, environment AS env, min(timestamp) AS started, "
        f"max(distinct_id) AS uid, {flags}, CAST(1 AS BIGINT) AS n "
        f"FROM {SESSIONS.name} WHERE project_id = {{p:UInt64}} AND session_id != '' {where} "
        f"GROUP BY release, environment, session_id "
        f"UNION ALL "
        f"SELECT release AS rel, environment AS env, timestamp AS started, distinct_id AS uid, "
        f"CASE WHEN status = 'crashed' THEN 1 ELSE 0 END AS c, "
        f"CASE WHEN status = 'abnormal' THEN 1 ELSE 0 END AS a, "
        f"CASE WHEN status = 'errored' THEN 1 ELSE 0 END AS e, CAST(quantity AS BIGINT) AS n "
        f"FROM {SESSIONS.name} WHERE project_id = {{p:UInt64}} AND session_id = '' {where}"
    )


def health(store: TelemetryStore, project_id: int, by: tuple[str, ...] = ("release",), *,
           release: str | None = None, environment: str | None = None,
           since: dt.datetime | None = None, until: dt.datetime | None = None,
           bucket_s: int | None = None) -> list[Health]:
    """Session health grouped by ``by`` (``release``, ``environment``) and time buckets.

    Each result's ``key`` holds the group's values (``release``, ``environment``, ``bucket`` as
    epoch seconds of the bucket's start). Users are counted per group, never summed.
    """
    where, params = [], {"p": project_id}
    if release is not None:
        where.append("release = {rel:String}")
        params["rel"] = release
    if environment is not None:
        where.append("environment = {env:String}")
        params["env"] = environment
    if since is not None:
        where.append("timestamp >= {since:DateTime64(6)}")
        params["since"] = since
    if until is not None:
        where.append("timestamp < {until:DateTime64(6)}")
        params["until"] = until
    cond = "".join(" AND " + w for w in where)
    cols = {"release": "rel", "environment": "env"}
    keys = [f"{cols[b]} AS {b}_key" for b in by]
    groups = [cols[b] for b in by]
    if bucket_s:
        keys.append(f"{store.time_bucket('started', bucket_s)} AS bucket_key")
        groups.append("bucket_key")
    select_keys = "".join(k + ", " for k in keys)
    group = f" GROUP BY {', '.join(groups)}" if groups else ""
    sql = (
        f"SELECT {select_keys}sum(n) AS sessions, sum(c * n) AS crashed, "
        f"sum(CASE WHEN c = 0 AND a = 1 THEN n ELSE 0 END) AS abnormal, "
        f"sum(CASE WHEN c = 0 AND a = 0 AND e = 1 THEN n ELSE 0 END) AS errored, "
        f"{store.uniq('uid')} AS users, "
        f"{store.uniq('CASE WHEN c = 1 THEN uid ELSE ' + chr(39) * 2 + ' END')} AS crashed_users "
        f"FROM ({_per_session_sql(cond)}) AS per_session{group}"
    )
    out = []
    for row in store.rows(sql, params):
        if not row["sessions"]:
            continue
        key = {k[:-4]: row[k] for k in row if k.endswith("_key")}
        out.append(Health(int(row["sessions"]), int(row["crashed"] or 0),
                          int(row["abnormal"] or 0), int(row["errored"] or 0),
                          int(row["users"] or 0), int(row["crashed_users"] or 0), key=key))
    return out


def adoption(store: TelemetryStore, project_id: int, environment: str | None = None,
             now: dt.datetime | None = None) -> dict[str, float]:
    """Each release's share (percent) of the last 24 hours' sessions (of ``environment``)."""
    since = (now or utcnow()) - ADOPTION_WINDOW
    rows = health(store, project_id, ("release",), environment=environment, since=since)
    total = sum(h.sessions for h in rows)
    return {h.key["release"]: round(100.0 * h.sessions / total, 3) for h in rows if total}


def environments(store: TelemetryStore, project_id: int, release: str | None = None) -> list[str]:
    where = " AND release = {rel:String}" if release is not None else ""
    params: dict[str, Any] = {"p": project_id}
    if release is not None:
        params["rel"] = release
    rows = store.rows(
        f"SELECT DISTINCT environment FROM {SESSIONS.name} WHERE project_id = {{p:UInt64}}{where} "
        f"UNION DISTINCT SELECT DISTINCT environment FROM events "
        f"WHERE project_id = {{p:UInt64}}{where}", params)
    return sorted({r["environment"] for r in rows if r["environment"]})


@dataclass
class ReleaseSummary:
    """One row of a project's release list."""

    release: Release
    health: Health
    new_issues: int

    @property
    def version(self) -> str:
        return self.release.version


def summaries(s: Session, store: TelemetryStore, project: Project,
              environment: str | None = None) -> list[ReleaseSummary]:
    """The project's releases, newest first, with health, adoption and new issues."""
    sync_observed(s, store, project)
    per_release = {h.key["release"]: h for h in
                   health(store, project.id, ("release",), environment=environment)}
    adopted = adoption(store, project.id, environment)
    counts = new_issue_counts(s, project.id)
    out = []
    for release in releases_of_project(s, project.id):
        h = per_release.get(release.version) or Health(key={"release": release.version})
        h.adoption = adopted.get(release.version, 0.0 if per_release else None)
        out.append(ReleaseSummary(release, h, counts.get(release.version, 0)))
    return out


# -- /api/v1 ---------------------------------------------------------------------------------

api = APIRouter(prefix="/api/v1", tags=["releases"])


class ReleaseHealthOut(BaseModel):
    version: str
    date_created: dt.datetime
    date_released: dt.datetime | None
    ref: str | None
    url: str | None
    new_issues: int = Field(description="Issues first seen in this release")
    sessions: int
    sessions_crashed: int
    sessions_errored: int
    sessions_abnormal: int
    users: int
    crash_free_sessions: float | None = Field(
        description="Percentage of sessions that did not crash; null when there are none")
    crash_free_users: float | None = Field(
        description="Percentage of users without a crashed session; null when unknown")
    adoption: float | None = Field(
        description="Percentage of the last 24 hours' sessions that ran this release")
    commit_count: int
    deploy_count: int


@api.get("/projects/{project_id}/releases", response_model=list[ReleaseHealthOut])
def list_project_releases(project_id: int, request: Request, environment: str | None = None,
                          caller: Caller = Depends(api_caller),
                          db: Session = Depends(db_session)) -> list[ReleaseHealthOut]:
    """A project's releases, newest first, with release health from sessions."""
    project, _ = project_access(db, caller, project_id, Role.viewer)
    rows = summaries(db, request.app.state.runtime.store, project, environment)
    return [ReleaseHealthOut(
        version=r.version, date_created=r.release.date_created,
        date_released=r.release.date_released, ref=r.release.ref, url=r.release.url,
        new_issues=r.new_issues, sessions=r.health.sessions,
        sessions_crashed=r.health.crashed, sessions_errored=r.health.errored,
        sessions_abnormal=r.health.abnormal, users=r.health.users,
        crash_free_sessions=r.health.crash_free_sessions,
        crash_free_users=r.health.crash_free_users, adoption=r.health.adoption,
        commit_count=len(shown_commits(r.release)), deploy_count=len(r.release.deploys),
    ) for r in rows]


# -- pages -----------------------------------------------------------------------------------

pages = APIRouter(include_in_schema=False)
templating.add_template_dir(Path(__file__).parent / "templates")
templating.register_area("releases", "/o/{org}/p/{project}/releases")

#: Time ranges of the detail page: label → (window, bucket width) in seconds.
PERIODS = {"24h": (86400, 3600), "7d": (7 * 86400, 6 * 3600), "30d": (30 * 86400, 86400),
           "90d": (90 * 86400, 86400)}




def health_class(pct: float | None) -> str:
    """Colour of a crash-free figure, as Sentry draws it."""
    if pct is None:
        return "muted"
    return "good" if pct >= 99.5 else "warn" if pct >= 98 else "bad"


def format_pct(pct: float | None) -> str:
    if pct is None:
        return "—"
    if pct == int(pct):
        return f"{pct:.0f}%"
    # Truncate, not round: 99.996% crash-free is not 100%.
    return f"{math.floor(pct * 100) / 100:.2f}%"


templating.env.filters.update(health_class=health_class, pct=format_pct,
                              urlpart=lambda v: quote(str(v), safe=""))
templating.env.globals.update(shown_commits=shown_commits)


@pages.get("/o/{org}/p/{project}/releases")
def releases_page(org: str, project: str, request: Request, environment: str = "",
                  caller: Caller = Depends(page_caller),
                  db: Session = Depends(db_session)) -> Response:
    organization, proj, role = _page_project(db, caller, org, project)
    store = request.app.state.runtime.store
    env = environment or None
    rows = summaries(db, store, proj, env)
    return templating.render(request, "releases/list.html", {
        "caller": caller, "org": organization, "project": proj, "role": role,
        "rows": rows, "environments": environments(store, proj.id), "environment": environment,
    }, db=db)


@pages.get("/o/{org}/p/{project}/releases/{version:path}")
def release_page(org: str, project: str, version: str, request: Request, environment: str = "",
                 period: str = "7d", caller: Caller = Depends(page_caller),
                 db: Session = Depends(db_session)) -> Response:
    organization, proj, role = _page_project(db, caller, org, project)
    store = request.app.state.runtime.store
    sync_observed(db, store, proj)
    release = db.scalar(select(Release).join(ReleaseProject).where(
        ReleaseProject.project_id == proj.id, Release.version == version))
    if release is None:
        raise HTTPException(404, "no such release in this project")
    env = environment or None
    period = period if period in PERIODS else "7d"
    window, bucket = PERIODS[period]
    now = utcnow()
    since = now - dt.timedelta(seconds=window)
    [total] = health(store, proj.id, (), release=version, environment=env) or [Health()]
    total.adoption = adoption(store, proj.id, env, now).get(version)
    per_env = sorted(health(store, proj.id, ("environment",), release=version),
                     key=lambda h: -h.sessions)
    adopted_by_env = {e.key["environment"]: adoption(store, proj.id, e.key["environment"], now)
                      .get(version) for e in per_env}
    for e in per_env:
        e.adoption = adopted_by_env.get(e.key["environment"])
    series = _series(health(store, proj.id, (), release=version, environment=env, since=since,
                            bucket_s=bucket), since, now, bucket)
    return templating.render(request, "releases/detail.html", {
        "caller": caller, "org": organization, "project": proj, "role": role,
        "release": release, "total": total, "per_env": per_env, "series": series,
        "environments": environments(store, proj.id, version), "environment": environment,
        "period": period, "periods": list(PERIODS),
        "new_issues": new_issues(db, proj.id, version),
        "short_prefix": proj.slug.upper(),
    }, db=db)


def _series(rows: list[Health], since: dt.datetime, now: dt.datetime,
            bucket: int) -> dict[str, list[Any]]:
    """Columns for the chart: every bucket of the window, empty ones as gaps."""
    by_bucket = {int(h.key["bucket"]): h for h in rows}
    start = int(since.timestamp()) // bucket * bucket
    xs, sessions, crash_free, crashed = [], [], [], []
    for t in range(start, int(now.timestamp()) + 1, bucket):
        h = by_bucket.get(t)
        xs.append(t)
        sessions.append(h.sessions if h else 0)
        crashed.append(h.crashed if h else 0)
        crash_free.append(h.crash_free_sessions if h else None)
    return {"x": xs, "sessions": sessions, "crashed": crashed, "crash_free": crash_free}


def install(app: FastAPI) -> None:
    app.include_router(api)
    app.include_router(pages)
