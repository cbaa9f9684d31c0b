"""Which issue an event belongs to: exact hash first, then the similarity model, else a new one.

The hash → issue mapping is cached in the process; the database's unique constraint on
(project, hash) settles races between processes that see a new hash at the same moment.
Merging moves hashes between issues (and rewrites the issue of stored events), so the cache
of a project is dropped whenever that happens here, and entries expire after a minute so that
other processes notice too.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spyglass.errors.grouping import Grouping, SimilarityIndex
from spyglass.errors.models import Issue, IssueHash
from spyglass.kernel.meta.db import Database

CACHE_SIZE = 200_000
CACHE_TTL_S = 60.0


def _event_time(event: dict[str, Any]) -> dt.datetime:
    from spyglass.errors.normalize import parse_timestamp

    ts = parse_timestamp(event.get("timestamp"))
    return ts.replace(tzinfo=dt.UTC) if ts else dt.datetime.now(dt.UTC)


def next_short_id(s: Session, project_id: int) -> int:
    return (s.scalar(select(func.max(Issue.short_id)).where(Issue.project_id == project_id)) or 0) + 1


class HashCache:
    """A bounded LRU of (project, hash) → issue id with an age limit."""

    def __init__(self, size: int = CACHE_SIZE, ttl: float = CACHE_TTL_S) -> None:
        self._data: OrderedDict[tuple[int, str], tuple[int, float]] = OrderedDict()
        self._size, self._ttl = size, ttl
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str]) -> int | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if time.monotonic() - hit[1] > self._ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return hit[0]

    def put(self, key: tuple[int, str], issue_id: int) -> None:
        with self._lock:
            self._data[key] = (issue_id, time.monotonic())
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def forget_project(self, project_id: int) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] == project_id]:
                del self._data[key]


def skeleton(event: dict[str, Any]) -> dict[str, Any]:
    """What the similarity model reads of an event, small enough to keep with the issue."""
    values = []
    for exc in (event.get("exception") or {}).get("values") or []:
        frames = [
            {k: f[k] for k in ("module", "filename", "abs_path", "function", "in_app") if k in f}
            for f in ((exc.get("stacktrace") or {}).get("frames") or [])[-30:]
        ]
        values.append({"type": exc.get("type"), "value": (exc.get("value") or "")[:500],
                       "stacktrace": {"frames": frames}})
    out: dict[str, Any] = {"platform": event.get("platform")}
    if values:
        out["exception"] = {"values": values}
    if event.get("message"):
        out["message"] = str(event["message"])[:500]
    return out


class IssueResolver:
    def __init__(self, db: Database, merge_threshold: float | None = None) -> None:
        self.db = db
        #: None: the similarity model's own default threshold (chosen on the labelled corpus).
        self.merge_threshold = merge_threshold
        self.cache = HashCache()
        self._indexes: dict[int, SimilarityIndex] = {}
        self._loaded_upto: dict[int, int] = {}
        # Guards new-hash placement and the similarity indexes, which are not thread-safe.
        self._create_lock = threading.RLock()

    def cached(self, project_id: int, hash_: str) -> int | None:
        """The issue of a hash when the cache knows it (no database access)."""
        return self.cache.get((project_id, hash_))

    def resolve(self, project_id: int, grouping: Grouping, event: dict[str, Any],
                similarity: bool) -> int:
        key = (project_id, grouping.hash)
        issue_id = self.cache.get(key)
        if issue_id is not None:
            return issue_id
        with self._create_lock, self.db.session() as s:
            issue_id = self._known(s, project_id, grouping.hash)
            if issue_id is None:
                issue_id = self._place_new_hash(s, project_id, grouping, event, similarity)
        self.cache.put(key, issue_id)
        return issue_id

    @staticmethod
    def _known(s: Session, project_id: int, hash_: str) -> int | None:
        return s.scalar(select(IssueHash.issue_id).where(
            IssueHash.project_id == project_id, IssueHash.hash == hash_))

    def _place_new_hash(self, s: Session, project_id: int, grouping: Grouping,
                        event: dict[str, Any], similarity: bool) -> int:
        how = "hash"
        target: int | None = None
        index = self.index(s, project_id) if similarity else None
        if index is not None and grouping.variant != "custom-fingerprint":
            # A client or rule fingerprint is an explicit decision; the model must not override it.
            threshold = self.merge_threshold or index.merge_threshold
            for candidate, score in index.nearest(event, k=1):
                if score >= threshold:
                    target, how = candidate, f"similar:{score:.3f}"
        if target is None:
            target = self._create_issue(s, project_id, grouping, event)
            if index is not None:
                index.add(target, event)
                self._loaded_upto[project_id] = max(self._loaded_upto.get(project_id, 0), target)
        s.add(IssueHash(project_id=project_id, hash=grouping.hash, issue_id=target, how=how))
        try:
            s.flush()
        except IntegrityError:
            # Another process placed this hash first; use its decision.
            s.rollback()
            known = self._known(s, project_id, grouping.hash)
            assert known is not None
            return known
        return target

    def _create_issue(self, s: Session, project_id: int, grouping: Grouping,
                      event: dict[str, Any]) -> int:
        for _attempt in range(5):
            issue = Issue(
                project_id=project_id, short_id=next_short_id(s, project_id), title=grouping.title[:1000],
                culprit=grouping.culprit[:500], level=event.get("level", "error"),
                meta=grouping.metadata, variant=grouping.variant,
                similarity_text=orjson.dumps(skeleton(event)).decode(),
                first_release=event.get("release") or "",
                # The event's own time, as "last seen" is: first never comes after last.
                first_seen=_event_time(event),
            )
            try:
                with s.begin_nested():
                    s.add(issue)
                    s.flush()
                return issue.id
            except IntegrityError:
                continue  # a concurrent process took this short id
        raise RuntimeError("could not allocate an issue short id")

    def similar(self, s: Session, project_id: int, event: dict[str, Any], k: int = 5,
                exclude: int | None = None) -> list[tuple[int, float]]:
        """Issues that look like ``event``, best first, with scores in [0, 1]."""
        with self._create_lock:
            hits = self.index(s, project_id).nearest(event, k=k + 1)
        return [(i, score) for i, score in hits if i != exclude][:k]

    def index(self, s: Session, project_id: int) -> SimilarityIndex:
        """The project's similarity index, topped up with issues other processes created.

        Callers must hold the resolver's lock (``similar`` does)."""
        index = self._indexes.get(project_id)
        if index is None:
            index = self._indexes[project_id] = SimilarityIndex()
        upto = self._loaded_upto.get(project_id, 0)
        rows = s.execute(select(Issue.id, Issue.similarity_text).where(
            Issue.project_id == project_id, Issue.id > upto,
            Issue.merged_into_id.is_(None))).all()
        for issue_id, text in rows:
            if text:
                index.add(issue_id, orjson.loads(text))
            upto = max(upto, issue_id)
        self._loaded_upto[project_id] = upto
        return index

    def forget(self, project_id: int) -> None:
        """Drop cached decisions of a project (after merges and unmerges)."""
        self.cache.forget_project(project_id)
        self._indexes.pop(project_id, None)
        self._loaded_upto.pop(project_id, None)
