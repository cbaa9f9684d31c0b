"""Issue lifecycle: resolve, ignore, reopen, merge, unmerge, and regression detection.

Regressions are found from durable state, not in the ingest path: a periodic job looks for
events that arrived after an issue was resolved. That way a crash between the event's commit
and the status change loses nothing, and several ingest processes need no coordination.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from spyglass.errors.models import Issue, IssueHash, IssueStatus
from spyglass.errors.schema import EVENTS
from spyglass.kernel.meta.models import utcnow
from spyglass.kernel.telemetry import TelemetryStore


class StateError(ValueError):
    """A status change that makes no sense; the message is shown to the user."""


@dataclass
class Change:
    status: IssueStatus
    #: Resolve only for releases after the latest one that saw this issue.
    in_next_release: bool = False
    ignore_minutes: int | None = None
    ignore_count: int | None = None


def latest_release(store: TelemetryStore, project_id: int, issue_id: int) -> str | None:
    row = store.rows(
        "SELECT release, max(received_at) AS seen FROM events WHERE project_id = {p:UInt64} "
        "AND issue_id = {i:UInt64} AND release != '' GROUP BY release ORDER BY seen DESC LIMIT 1",
        {"p": project_id, "i": issue_id},
    )
    return row[0]["release"] if row else None


def change_status(s: Session, store: TelemetryStore, issue: Issue, change: Change) -> None:
    now = utcnow()
    issue.status = change.status.value
    issue.resolved_at = issue.resolved_in_release = None
    issue.ignored_at = issue.ignore_until = issue.ignore_count = None
    if change.status == IssueStatus.resolved:
        issue.resolved_at = now
        issue.substatus = ""
        if change.in_next_release:
            release = latest_release(store, issue.project_id, issue.id)
            if release is None:
                raise StateError("this issue has no release yet; resolve it now instead")
            issue.resolved_in_release = release
    elif change.status == IssueStatus.ignored:
        issue.ignored_at = now
        issue.substatus = "archived"
        if change.ignore_minutes:
            issue.ignore_until = now + dt.timedelta(minutes=change.ignore_minutes)
        if change.ignore_count:
            issue.ignore_count = change.ignore_count
    else:
        issue.substatus = "ongoing"
    s.flush()


def merge(s: Session, store: TelemetryStore, target: Issue, others: list[Issue]) -> None:
    """Fold ``others`` into ``target``: their hashes and stored events move to it."""
    ids = [o.id for o in others if o.id != target.id]
    if not ids:
        raise StateError("pick at least two issues to merge")
    for other in others:
        if other.project_id != target.project_id:
            raise StateError("issues of different projects cannot be merged")
    s.execute(update(IssueHash).where(IssueHash.issue_id.in_(ids)).values(issue_id=target.id))
    for other in others:
        if other.id != target.id:
            other.merged_into_id = target.id
            other.status = IssueStatus.resolved.value
            other.substatus = "merged"
            if other.first_seen < target.first_seen:
                target.first_seen, target.first_release = other.first_seen, other.first_release
    s.flush()
    move_events(store, target.project_id, ids, target.id)


def unmerge(s: Session, store: TelemetryStore, issue: Issue, hash_: str) -> Issue:
    """Split the events of one hash out of ``issue`` into a new issue."""
    h = s.scalar(select(IssueHash).where(IssueHash.issue_id == issue.id, IssueHash.hash == hash_))
    if h is None:
        raise StateError("that hash does not belong to this issue")
    remaining = s.scalar(select(IssueHash.id).where(
        IssueHash.issue_id == issue.id, IssueHash.hash != hash_).limit(1))
    if remaining is None:
        raise StateError("an issue's only hash cannot be split out")
    from spyglass.errors.issues import next_short_id

    first = store.rows(
        "SELECT title, culprit, level, release, timestamp FROM events WHERE project_id = {p:UInt64} "
        "AND group_hash = {h:String} ORDER BY timestamp LIMIT 1",
        {"p": issue.project_id, "h": hash_},
    )
    sample = first[0] if first else {"title": issue.title, "culprit": issue.culprit,
                                      "level": issue.level, "release": ""}
    new = Issue(
        project_id=issue.project_id, short_id=next_short_id(s, issue.project_id),
        title=sample["title"], culprit=sample["culprit"], level=sample["level"],
        meta=dict(issue.meta or {}), variant=issue.variant, similarity_text="",
        first_release=sample.get("release") or "", substatus="new",
    )
    s.add(new)
    s.flush()
    h.issue_id, h.how = new.id, "unmerged"
    s.flush()
    move_hash_events(store, issue.project_id, hash_, new.id)
    return new


def _mutate(store: TelemetryStore, assignment: str, where: str, params: dict) -> None:  # type: ignore[type-arg]
    if store.dialect == "clickhouse":
        # A synchronous mutation: the pages see the move as soon as the request returns.
        store.execute(f"ALTER TABLE {EVENTS.name} UPDATE {assignment} WHERE {where} "
                      "SETTINGS mutations_sync = 2", params)
    else:
        store.execute(f"UPDATE {EVENTS.name} SET {assignment} WHERE {where}", params)


def move_events(store: TelemetryStore, project_id: int, from_ids: list[int], to_id: int) -> None:
    ids = ", ".join(str(int(i)) for i in from_ids)
    _mutate(store, "issue_id = {to:UInt64}",
            f"project_id = {{p:UInt64}} AND issue_id IN ({ids})", {"p": project_id, "to": to_id})


def move_hash_events(store: TelemetryStore, project_id: int, hash_: str, to_id: int) -> None:
    _mutate(store, "issue_id = {to:UInt64}", "project_id = {p:UInt64} AND group_hash = {h:String}",
            {"p": project_id, "h": hash_, "to": to_id})


def detect_regressions(s: Session, store: TelemetryStore) -> list[int]:
    """Reopen resolved issues with newer events, and ignored issues whose condition passed.

    Returns the ids of issues that changed.
    """
    changed: list[int] = []
    now = utcnow()
    resolved = s.scalars(select(Issue).where(
        Issue.status == IssueStatus.resolved.value, Issue.merged_into_id.is_(None))).all()
    by_project: dict[int, list[Issue]] = {}
    for issue in resolved:
        by_project.setdefault(issue.project_id, []).append(issue)
    for project_id, issues in by_project.items():
        since = min(i.resolved_at or now for i in issues)
        ids = ", ".join(str(i.id) for i in issues)
        rows = store.rows(
            f"SELECT issue_id, release, min(received_at) AS first_after FROM events "
            f"WHERE project_id = {{p:UInt64}} AND issue_id IN ({ids}) "
            f"AND received_at > {{since:DateTime64(6)}} GROUP BY issue_id, release",
            {"p": project_id, "since": since},
        )
        firsts = release_first_seen(store, project_id) if any(i.resolved_in_release for i in issues) else {}
        latest = {i.id: i for i in issues}
        for row in rows:
            issue = latest.get(row["issue_id"])
            if issue is None or issue.status != IssueStatus.resolved.value:
                continue
            resolved_at = (issue.resolved_at or now).replace(tzinfo=None)
            if row["first_after"] <= resolved_at:
                continue
            if issue.resolved_in_release is not None:
                # Only a release that first appeared after the resolution counts as "next".
                seen = firsts.get(row["release"])
                if not row["release"] or row["release"] == issue.resolved_in_release or (
                        seen is not None and seen <= resolved_at):
                    continue
            issue.status, issue.substatus, issue.regressed_at = (
                IssueStatus.unresolved.value, "regressed", now)
            issue.resolved_at = issue.resolved_in_release = None
            changed.append(issue.id)
    changed += _expire_ignores(s, store, now)
    s.flush()
    return changed


def _expire_ignores(s: Session, store: TelemetryStore, now: dt.datetime) -> list[int]:
    changed = []
    for issue in s.scalars(select(Issue).where(Issue.status == IssueStatus.ignored.value)).all():
        expired = issue.ignore_until is not None and issue.ignore_until <= now
        if not expired and issue.ignore_count and issue.ignored_at:
            n = store.scalar(
                "SELECT count(*) FROM events WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64} "
                "AND received_at > {since:DateTime64(6)}",
                {"p": issue.project_id, "i": issue.id, "since": issue.ignored_at},
            )
            expired = (n or 0) >= issue.ignore_count
        if expired:
            issue.status, issue.substatus = IssueStatus.unresolved.value, "escalating"
            issue.ignored_at = issue.ignore_until = issue.ignore_count = None
            changed.append(issue.id)
    return changed


def release_first_seen(store: TelemetryStore, project_id: int) -> dict[str, dt.datetime]:
    rows = store.rows(
        "SELECT release, min(received_at) AS first FROM events WHERE project_id = {p:UInt64} "
        "AND release != '' GROUP BY release", {"p": project_id})
    return {r["release"]: r["first"] for r in rows}
