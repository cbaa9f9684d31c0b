"""The read side of error tracking: issues with their stats, tags, events, similar issues.

Pages and the Sentry-compatible API call these functions; none of them knows about HTTP.
Counts are aggregated from the events table when asked (issues keep only what people change),
and every query is written once for DuckDB and ClickHouse: placeholders are bound, and the
few functions that differ come from the store's dialect helpers.

Times are naive UTC ``datetime`` values, as the telemetry stores return them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spyglass.errors import search as searching
from spyglass.errors.grouping import SimilarityIndex
from spyglass.errors.models import Issue, IssueHash
from spyglass.kernel.telemetry import TelemetryStore

#: Statistics periods: name → (length in seconds, bucket width of the sparkline).
PERIODS: dict[str, tuple[int, int]] = {
    "1h": (3600, 300),
    "24h": (86400, 3600),
    "7d": (7 * 86400, 6 * 3600),
    "14d": (14 * 86400, 12 * 3600),
    "30d": (30 * 86400, 86400),
    "90d": (90 * 86400, 3 * 86400),
}
DEFAULT_PERIOD = "14d"
SORTS = {"last_seen": "Last seen", "first_seen": "First seen", "events": "Events",
         "users": "Users"}
NEW_FOR = dt.timedelta(days=7)
#: Tags shown first on the issue page, in this order; the others follow alphabetically.
PRIORITY_TAGS = ["level", "handled", "release", "environment", "browser", "os", "runtime",
                 "device", "url", "transaction", "user", "server_name", "mechanism"]
#: Derived tags that repeat another one (``browser.name`` beside ``browser``).
HIDDEN_TAGS = {"browser.name", "os.name", "runtime.name", "device.name"}
SIMILARITY_POOL = 3000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def naive(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _ids_sql(ids: Iterable[int]) -> str:
    """An ``IN`` list of integers (ints only, so nothing user-typed reaches the SQL)."""
    return ", ".join(str(int(i)) for i in ids) or "0"


# -- short ids -------------------------------------------------------------------------------


def short_prefix(project_slug: str) -> str:
    return project_slug.upper()


def format_short_id(project_slug: str, number: int) -> str:
    """``SHOP-12``: the project's slug in capitals and the issue's number in the project."""
    return f"{short_prefix(project_slug)}-{number}"


def parse_short_id(text: str) -> int | None:
    """``SHOP-12``, ``shop-12`` or ``12`` → 12; None when it is not one."""
    tail = text.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() and len(tail) < 12 else None


def issue_by_short_id(s: Session, project_id: int, text: str) -> Issue | None:
    number = parse_short_id(text)
    if number is None:
        return None
    return s.scalar(select(Issue).where(Issue.project_id == project_id, Issue.short_id == number))


# -- time buckets ----------------------------------------------------------------------------


@dataclass
class Series:
    """Event counts per bucket; ``starts`` are the buckets' starting instants."""

    starts: list[dt.datetime]
    bucket_seconds: int
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def peak(self) -> int:
        return max(self.counts, default=0)


def buckets(period: str, now: dt.datetime | None = None) -> tuple[list[int], int]:
    """Epoch-second starts of the period's buckets (the last one holds ``now``) and the width."""
    length, width = PERIODS.get(period, PERIODS[DEFAULT_PERIOD])
    now = naive(now) or utcnow()
    end = int(now.replace(tzinfo=dt.UTC).timestamp()) // width * width
    n = length // width
    return [end - (n - 1 - i) * width for i in range(n)], width


def _epoch_to_dt(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


def series_for(store: TelemetryStore, project_id: int, issue_ids: list[int], period: str,
               now: dt.datetime | None = None, conditions: list[str] | None = None,
               params: dict[str, Any] | None = None) -> dict[int, Series]:
    """Events over time for each of ``issue_ids`` (the sparklines of the issues list)."""
    starts, width = buckets(period, now)
    out = {i: Series([_epoch_to_dt(b) for b in starts], width, [0] * len(starts)) for i in issue_ids}
    if not issue_ids:
        return out
    where = " AND ".join(["project_id = {p:UInt64}", f"issue_id IN ({_ids_sql(issue_ids)})",
                          "timestamp >= {since:DateTime64(6)}", *(conditions or [])])
    rows = store.rows(
        f"SELECT issue_id, {store.time_bucket('timestamp', width)} AS b, count(*) AS n "
        f"FROM events WHERE {where} GROUP BY issue_id, b",
        {"p": project_id, "since": _epoch_to_dt(starts[0]), **(params or {})},
    )
    index = {b: i for i, b in enumerate(starts)}
    for r in rows:
        pos = index.get(int(r["b"]))
        if pos is not None and r["issue_id"] in out:
            out[r["issue_id"]].counts[pos] += int(r["n"])
    return out


def issue_series(store: TelemetryStore, project_id: int, issue_id: int, period: str = "24h",
                 now: dt.datetime | None = None) -> Series:
    """Events of one issue over ``period`` (the issue page's chart)."""
    return series_for(store, project_id, [issue_id], period, now)[issue_id]


# -- the issues list -------------------------------------------------------------------------


@dataclass
class IssueRow:
    """One line of the issues list."""

    issue: Issue
    short_id: str
    events: int
    users: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    #: Hashes beyond the first one: fingerprints merged in by people or by similarity.
    merged: int = 0
    series: Series | None = None

    @property
    def badges(self) -> list[str]:
        out = []
        sub = self.issue.substatus
        if sub == "new" and self.first_seen >= utcnow() - NEW_FOR:
            out.append("new")
        if sub in ("regressed", "escalating"):
            out.append(sub)
        return out


@dataclass
class IssueList:
    rows: list[IssueRow]
    #: Issues matching the query (all pages).
    total: int
    #: Issues matching everything but the status, per status (for the status tabs).
    status_counts: dict[str, int]
    offset: int
    limit: int
    search: searching.Search
    period: str

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None

    @property
    def prev_offset(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset > 0 else None


def _compare(value: Any, op: str, other: Any) -> bool:
    return {">": value > other, ">=": value >= other, "<": value < other, "<=": value <= other,
            "=": value == other}[op]


def search_issues(
    s: Session,
    store: TelemetryStore,
    project_id: int,
    project_slug: str,
    query: str | searching.Search = searching.DEFAULT_QUERY,
    *,
    period: str = DEFAULT_PERIOD,
    environment: str | None = None,
    sort: str = "last_seen",
    offset: int = 0,
    limit: int = 25,
    now: dt.datetime | None = None,
) -> IssueList:
    """Issues of a project with events in ``period`` that match ``query``, with their stats.

    Counts (events, users, last seen) are those of the matching events in the period, as in
    Sentry's list; ``first_seen`` is the issue's. Sparklines are computed for the returned page
    only.
    """
    now = naive(now) or utcnow()
    found = query if isinstance(query, searching.Search) else searching.parse(
        query, now, short_prefix(project_slug))
    period = period if period in PERIODS else DEFAULT_PERIOD
    since = now - dt.timedelta(seconds=PERIODS[period][0])
    conditions, params = searching.event_conditions(found, store.dialect)
    if environment:
        conditions.append("environment = {env:String}")
        params["env"] = environment
    where = " AND ".join(["project_id = {p:UInt64}", "timestamp >= {since:DateTime64(6)}",
                          *conditions])
    agg = store.rows(
        f"SELECT issue_id, count(*) AS events, {store.uniq('user_key')} AS users, "
        f"max(timestamp) AS last_seen FROM events WHERE {where} GROUP BY issue_id",
        {"p": project_id, "since": since, **params},
    )
    stats = {r["issue_id"]: r for r in agg}
    issues: list[Issue] = []
    ids = list(stats)
    for start in range(0, len(ids), 2000):
        q = select(Issue).where(Issue.project_id == project_id, Issue.merged_into_id.is_(None),
                                Issue.id.in_(ids[start:start + 2000]))
        if found.short_ids:
            q = q.where(Issue.short_id.in_(found.short_ids))
        if found.substatuses:
            q = q.where(Issue.substatus.in_(found.substatuses))
        issues.extend(s.scalars(q))
    rows = []
    for issue in issues:
        st = stats[issue.id]
        first = naive(issue.first_seen) or st["last_seen"]
        row = IssueRow(issue, format_short_id(project_slug, issue.short_id), int(st["events"]),
                       int(st["users"]), first, st["last_seen"])
        if all(_compare(row.first_seen, op, at) for op, at in found.first_seen) and all(
                _compare(row.last_seen, op, at) for op, at in found.last_seen) and all(
                _compare(row.events, op, n) for op, n in found.times_seen):
            rows.append(row)
    counts = {status: 0 for status in searching.STATUSES}
    for row in rows:
        counts[row.issue.status] = counts.get(row.issue.status, 0) + 1
    if found.statuses is not None:
        rows = [r for r in rows if r.issue.status in found.statuses]
    key = {"first_seen": lambda r: r.first_seen, "events": lambda r: (r.events, r.last_seen),
           "users": lambda r: (r.users, r.events), "last_seen": lambda r: r.last_seen}.get(
        sort, lambda r: r.last_seen)
    rows.sort(key=lambda r: r.issue.id, reverse=True)
    rows.sort(key=key, reverse=True)  # type: ignore[arg-type]
    offset = max(0, offset)
    page = rows[offset:offset + limit]
    page_ids = [r.issue.id for r in page]
    series = series_for(store, project_id, page_ids, period, now, conditions,
                        {**params})
    merged = _hash_counts(s, page_ids)
    for r in page:
        r.series = series[r.issue.id]
        r.merged = max(0, merged.get(r.issue.id, 1) - 1)
    return IssueList(page, len(rows), counts, offset, limit, found, period)


def _hash_counts(s: Session, issue_ids: list[int]) -> dict[int, int]:
    if not issue_ids:
        return {}
    return dict(s.execute(select(IssueHash.issue_id, func.count()).where(
        IssueHash.issue_id.in_(issue_ids)).group_by(IssueHash.issue_id)).all())  # type: ignore[arg-type]


def has_events(store: TelemetryStore, project_id: int) -> bool:
    """Whether the project ever received an event (for the list's first-run help)."""
    return store.scalar("SELECT count(*) FROM (SELECT 1 FROM events WHERE project_id = {p:UInt64} "
                        "LIMIT 1) AS t", {"p": project_id}) > 0


def facets(store: TelemetryStore, project_id: int, since: dt.datetime, limit: int = 100
           ) -> dict[str, list[str]]:
    """Releases and environments seen since ``since``, most recent first (for the filters)."""
    out = {}
    for column in ("release", "environment"):
        rows = store.rows(
            f"SELECT {column} AS v, max(timestamp) AS last FROM events WHERE project_id = "
            f"{{p:UInt64}} AND timestamp >= {{since:DateTime64(6)}} AND {column} != '' "
            f"GROUP BY {column} ORDER BY last DESC LIMIT {int(limit)}",
            {"p": project_id, "since": naive(since)})
        out[column] = [r["v"] for r in rows]
    return out


# -- one issue -------------------------------------------------------------------------------


@dataclass
class IssueStats:
    """All-time figures of an issue, from its stored events."""

    events: int = 0
    users: int = 0
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    first_release: str = ""
    last_release: str = ""
    events_24h: int = 0
    users_24h: int = 0


def issue_stats(store: TelemetryStore, project_id: int, issue_id: int,
                now: dt.datetime | None = None) -> IssueStats:
    now = naive(now) or utcnow()
    p = {"p": project_id, "i": issue_id}
    base = "FROM events WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64}"
    row = store.rows(
        f"SELECT count(*) AS n, {store.uniq('user_key')} AS users, min(timestamp) AS first, "
        f"max(timestamp) AS last {base}", p)[0]
    day = store.rows(f"SELECT count(*) AS n, {store.uniq('user_key')} AS users {base} "
                     "AND timestamp >= {day:DateTime64(6)}",
                     {**p, "day": now - dt.timedelta(days=1)})[0]
    if not row["n"]:
        return IssueStats()

    def release(order: str) -> str:
        found = store.rows(f"SELECT release {base} AND release != '' "
                           f"ORDER BY timestamp {order} LIMIT 1", p)
        return found[0]["release"] if found else ""

    return IssueStats(int(row["n"]), int(row["users"]), row["first"], row["last"],
                      release("ASC"), release("DESC"), int(day["n"]), int(day["users"]))


@dataclass
class TagValue:
    value: str
    count: int
    percent: float


@dataclass
class TagSummary:
    key: str
    #: Events that carry the tag.
    total: int
    #: How many different values it has.
    distinct: int
    top: list[TagValue] = field(default_factory=list)


def tag_distribution(store: TelemetryStore, project_id: int, issue_id: int, top: int = 5,
                     keys: Iterable[str] | None = None) -> list[TagSummary]:
    """Top values of every tag of the issue's events, with their share of the tagged events.

    Priority tags (level, release, environment, browser, os, url, user ...) come first.
    """
    if store.dialect == "clickhouse":
        pairs = ("SELECT k, v FROM events ARRAY JOIN mapKeys(tags) AS k, mapValues(tags) AS v "
                 "WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64}")
    else:
        pairs = ("SELECT unnest(map_keys(tags)) AS k, unnest(map_values(tags)) AS v FROM events "
                 "WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64}")
    rows = store.rows(
        "SELECT k, v, c, total, distinct_values FROM (SELECT k, v, c, "
        "row_number() OVER (PARTITION BY k ORDER BY c DESC, v ASC) AS rn, "
        "sum(c) OVER (PARTITION BY k) AS total, count(*) OVER (PARTITION BY k) AS distinct_values "
        f"FROM (SELECT k, v, count(*) AS c FROM ({pairs}) AS pairs WHERE v != '' "
        "GROUP BY k, v) AS counted) AS ranked WHERE rn <= {top:UInt32} ORDER BY k, c DESC, v",
        {"p": project_id, "i": issue_id, "top": top},
    )
    wanted = set(keys) if keys is not None else None
    by_key: dict[str, TagSummary] = {}
    for r in rows:
        k = r["k"]
        if k in HIDDEN_TAGS or (wanted is not None and k not in wanted):
            continue
        summary = by_key.get(k)
        if summary is None:
            summary = by_key[k] = TagSummary(k, int(r["total"]), int(r["distinct_values"]))
        summary.top.append(TagValue(r["v"], int(r["c"]),
                                    100.0 * int(r["c"]) / max(1, summary.total)))

    def order(key: str) -> tuple[int, str]:
        return (PRIORITY_TAGS.index(key) if key in PRIORITY_TAGS else len(PRIORITY_TAGS), key)

    return [by_key[k] for k in sorted(by_key, key=order)]


@dataclass
class HashInfo:
    """A grouping hash of an issue, for the "merged" tab and unmerging."""

    hash: str
    how: str
    created_at: dt.datetime
    events: int = 0
    last_seen: dt.datetime | None = None
    title: str = ""


def issue_hashes(s: Session, store: TelemetryStore, issue: Issue) -> list[HashInfo]:
    hashes = list(s.scalars(select(IssueHash).where(IssueHash.issue_id == issue.id)
                            .order_by(IssueHash.id)))
    rows = store.rows(
        "SELECT group_hash, count(*) AS n, max(timestamp) AS last, min(title) AS title FROM events "
        "WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64} GROUP BY group_hash",
        {"p": issue.project_id, "i": issue.id})
    by_hash = {r["group_hash"]: r for r in rows}
    out = []
    for h in hashes:
        r = by_hash.get(h.hash, {})
        out.append(HashInfo(h.hash, h.how, naive(h.created_at) or utcnow(), int(r.get("n") or 0),
                            r.get("last"), r.get("title") or ""))
    return out


def merged_issues(s: Session, issue: Issue) -> list[Issue]:
    """Issues that were merged into ``issue``."""
    return list(s.scalars(select(Issue).where(Issue.merged_into_id == issue.id)
                          .order_by(Issue.short_id)))


# -- similar issues --------------------------------------------------------------------------


@dataclass
class SimilarIssue:
    issue: Issue
    short_id: str
    score: float


def _skeleton_of(issue: Issue) -> dict[str, Any] | None:
    if not issue.similarity_text:
        return None
    try:
        value = orjson.loads(issue.similarity_text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def similar_issues(s: Session, issue: Issue, project_slug: str, k: int = 5,
                   example: dict[str, Any] | None = None) -> list[SimilarIssue]:
    """The ``k`` open issues most like ``issue``, by the project's similarity model.

    The index is built from the issues' similarity skeletons (the most recent
    ``SIMILARITY_POOL`` unmerged issues). ``example`` (an event of the issue) stands in when
    the issue has no skeleton, as after an unmerge.
    """
    probe = _skeleton_of(issue) or example
    if probe is None:
        return []
    index = SimilarityIndex()
    candidates: dict[int, Issue] = {}
    for other in s.scalars(select(Issue).where(
            Issue.project_id == issue.project_id, Issue.merged_into_id.is_(None),
            Issue.id != issue.id).order_by(Issue.id.desc()).limit(SIMILARITY_POOL)):
        skeleton = _skeleton_of(other)
        if skeleton is not None:
            index.add(other.id, skeleton)
            candidates[other.id] = other
    return [SimilarIssue(candidates[i], format_short_id(project_slug, candidates[i].short_id),
                         score)
            for i, score in index.nearest(probe, k=k, exclude=issue.id) if i in candidates]


# -- events ----------------------------------------------------------------------------------

EVENT_COLUMNS = ("event_id, issue_id, timestamp, received_at, level, platform, release, "
                 "environment, title, culprit, exception_type, exception_value, transaction, "
                 "user_key, trace_id")


@dataclass
class EventSummary:
    event_id: str
    issue_id: int
    timestamp: dt.datetime
    received_at: dt.datetime
    level: str
    platform: str
    release: str
    environment: str
    title: str
    culprit: str
    exception_type: str
    exception_value: str
    transaction: str
    user_key: str
    trace_id: str

    @property
    def message(self) -> str:
        return self.exception_value or self.title


@dataclass
class StoredEvent(EventSummary):
    """An event with its full normalized JSON (``data``)."""

    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventPage:
    events: list[EventSummary]
    #: Pass as ``cursor`` for the next (older) page; None on the last page.
    next_cursor: str | None
    #: Events of the issue that match (all pages).
    total: int


def normalize_event_id(value: str) -> str | None:
    """An event id as stored (32 hex digits), or None when ``value`` is not a UUID."""
    try:
        return uuid.UUID(value.strip()).hex
    except (ValueError, AttributeError):
        return None


def _cursor(event: EventSummary) -> str:
    epoch_us = int(event.timestamp.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    return f"{epoch_us}:{event.event_id}"


def _parse_cursor(cursor: str | None) -> tuple[dt.datetime, str] | None:
    if not cursor or ":" not in cursor:
        return None
    us, event_id = cursor.split(":", 1)
    if not us.isdigit() or normalize_event_id(event_id) != event_id:
        return None
    return dt.datetime.fromtimestamp(int(us) / 1_000_000, dt.UTC).replace(tzinfo=None), event_id


def issue_events(store: TelemetryStore, project_id: int, issue_id: int, *,
                 cursor: str | None = None, limit: int = 50, query: str = "",
                 environment: str | None = None) -> EventPage:
    """Events of an issue, newest first, ``limit`` at a time; ``cursor`` from the last page.

    ``query`` takes the event-level part of the search syntax (tags, release, user, text).
    """
    found = searching.parse(query)
    conditions, params = searching.event_conditions(found, store.dialect)
    if environment:
        conditions.append("environment = {env:String}")
        params["env"] = environment
    base = " AND ".join(["project_id = {p:UInt64}", "issue_id = {i:UInt64}", *conditions])
    params.update({"p": project_id, "i": issue_id})
    total = int(store.scalar(f"SELECT count(*) FROM events WHERE {base}", params) or 0)
    where = base
    after = _parse_cursor(cursor)
    if after is not None:
        where += (" AND (timestamp < {cts:DateTime64(6)} OR (timestamp = {cts:DateTime64(6)} "
                  "AND event_id < {cid:String}))")
        params.update({"cts": after[0], "cid": after[1]})
    rows = store.rows(f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} "
                      f"ORDER BY timestamp DESC, event_id DESC LIMIT {int(limit) + 1}", params)
    events = [EventSummary(**r) for r in rows[:limit]]
    nxt = _cursor(events[-1]) if len(rows) > limit and events else None
    return EventPage(events, nxt, total)


def get_event(store: TelemetryStore, project_id: int, event_id: str) -> StoredEvent | None:
    """One event of the project by id (with or without dashes), with its JSON."""
    hex_id = normalize_event_id(event_id)
    if hex_id is None:
        return None
    rows = store.rows(f"SELECT {EVENT_COLUMNS}, data FROM events WHERE project_id = {{p:UInt64}} "
                      "AND event_id = {e:String} LIMIT 1", {"p": project_id, "e": hex_id})
    if not rows:
        return None
    row = rows[0]
    try:
        data = orjson.loads(row.pop("data") or "{}")
    except orjson.JSONDecodeError:
        data = {}
    return StoredEvent(**row, data=data if isinstance(data, dict) else {})


def edge_event_id(store: TelemetryStore, project_id: int, issue_id: int, latest: bool = True
                  ) -> str | None:
    """The issue's latest (or oldest) event id."""
    order = "DESC" if latest else "ASC"
    rows = store.rows(
        "SELECT event_id FROM events WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64} "
        f"ORDER BY timestamp {order}, event_id {order} LIMIT 1", {"p": project_id, "i": issue_id})
    return rows[0]["event_id"] if rows else None


@dataclass
class Neighbors:
    """Event ids around one event of an issue, for the event navigation."""

    oldest: str | None
    older: str | None
    newer: str | None
    latest: str | None


def neighbors(store: TelemetryStore, project_id: int, event: EventSummary) -> Neighbors:
    p = {"p": project_id, "i": event.issue_id, "ts": event.timestamp, "e": event.event_id}
    base = "SELECT event_id FROM events WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64} AND "
    older = store.rows(base + "(timestamp < {ts:DateTime64(6)} OR (timestamp = {ts:DateTime64(6)} "
                       "AND event_id < {e:String})) ORDER BY timestamp DESC, event_id DESC LIMIT 1", p)
    newer = store.rows(base + "(timestamp > {ts:DateTime64(6)} OR (timestamp = {ts:DateTime64(6)} "
                       "AND event_id > {e:String})) ORDER BY timestamp ASC, event_id ASC LIMIT 1", p)
    return Neighbors(
        edge_event_id(store, project_id, event.issue_id, latest=False) if older else None,
        older[0]["event_id"] if older else None,
        newer[0]["event_id"] if newer else None,
        edge_event_id(store, project_id, event.issue_id, latest=True) if newer else None,
    )


@dataclass
class Attachment:
    attachment_id: str
    event_id: str
    filename: str
    content_type: str
    attachment_type: str
    size: int
    blob_key: str
    timestamp: dt.datetime


ATTACHMENT_COLUMNS = ("attachment_id, event_id, filename, content_type, attachment_type, size, "
                      "blob_key, timestamp")


def event_attachments(store: TelemetryStore, project_id: int, event_id: str) -> list[Attachment]:
    hex_id = normalize_event_id(event_id) or ""
    dashed = str(uuid.UUID(hex_id)) if hex_id else ""
    rows = store.rows(f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE project_id = "
                      "{p:UInt64} AND event_id IN ({a:String}, {b:String}) ORDER BY timestamp, "
                      "filename", {"p": project_id, "a": hex_id, "b": dashed})
    return [Attachment(**r) for r in rows]


def get_attachment(store: TelemetryStore, project_id: int, attachment_id: str
                   ) -> Attachment | None:
    """An attachment of this project (None for another project's, whatever its id)."""
    rows = store.rows(f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE project_id = "
                      "{p:UInt64} AND attachment_id = {a:String} LIMIT 1",
                      {"p": project_id, "a": attachment_id})
    return Attachment(**rows[0]) if rows else None


@dataclass
class Feedback:
    feedback_id: str
    event_id: str
    timestamp: dt.datetime
    name: str
    email: str
    comments: str
    url: str


def issue_feedback(store: TelemetryStore, project_id: int, issue_id: int, limit: int = 100
                   ) -> list[Feedback]:
    """User feedback about the issue's events, newest first."""
    rows = store.rows(
        "SELECT feedback_id, event_id, timestamp, name, email, comments, url FROM feedback "
        "WHERE project_id = {p:UInt64} AND event_id != '' AND event_id IN (SELECT event_id FROM "
        "events WHERE project_id = {p:UInt64} AND issue_id = {i:UInt64}) "
        f"ORDER BY timestamp DESC LIMIT {int(limit)}", {"p": project_id, "i": issue_id})
    return [Feedback(**r) for r in rows]


def event_feedback(store: TelemetryStore, project_id: int, event_id: str) -> list[Feedback]:
    rows = store.rows(
        "SELECT feedback_id, event_id, timestamp, name, email, comments, url FROM feedback "
        "WHERE project_id = {p:UInt64} AND event_id = {e:String} ORDER BY timestamp DESC",
        {"p": project_id, "e": normalize_event_id(event_id) or ""})
    return [Feedback(**r) for r in rows]


# -- ingest outcomes -------------------------------------------------------------------------


@dataclass
class OutcomeSummary:
    outcome: str
    reason: str
    category: str
    quantity: int
    last: dt.datetime


def outcomes(store: TelemetryStore, project_id: int, since: dt.datetime) -> list[OutcomeSummary]:
    """Dropped and discarded items since ``since`` (rate limits, spikes, client discards)."""
    rows = store.rows(
        "SELECT outcome, reason, category, sum(quantity) AS quantity, max(timestamp) AS last "
        "FROM outcomes WHERE project_id = {p:UInt64} AND timestamp >= {since:DateTime64(6)} "
        "GROUP BY outcome, reason, category ORDER BY quantity DESC, outcome, reason LIMIT 200",
        {"p": project_id, "since": naive(since)})
    return [OutcomeSummary(r["outcome"], r["reason"], r["category"], int(r["quantity"]),
                           r["last"]) for r in rows]
