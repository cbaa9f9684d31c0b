"""Turning envelope items into rows, the stateful part: issues, duplicates, attachments.

:mod:`spyglass.errors.items` does what needs no state (normalize, scrub, group, build rows),
in the server process or in an ingest worker process; :meth:`EventProcessor.finish` then
assigns each event to its issue, drops events already stored, writes attachments to the blob
store, and collects every row in a :class:`Processed`. The endpoint writes those through the
batching writer and answers only when they are durable. A bad item is counted as invalid and
skipped; it never spoils the items next to it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

from spyglass.errors.envelope import Envelope, Item
from spyglass.errors.issues import IssueResolver
from spyglass.errors.items import (
    ItemConfig,
    ItemError,
    ItemsResult,
    PreparedEvent,
    RuleTexts,
    category,
    metric_kind,
    outcome,
    prepare_event,
    process_items,
)
from spyglass.errors.models import ErrorSettings
from spyglass.errors.schema import ATTACHMENTS, EVENTS, FEEDBACK, OUTCOMES, SESSIONS, TRANSACTIONS
from spyglass.kernel import selfmetrics
from spyglass.kernel.blobs import BlobStore
from spyglass.kernel.jobs.retention import blob_day_prefix, register_blob_kind
from spyglass.kernel.meta.db import Database
from spyglass.kernel.telemetry import TableSpec
from spyglass.otel.schema import LOGS, SPANS

MAX_ATTACHMENT = 100 * 1024 * 1024
ATTACHMENT_BLOBS = "attachments"
register_blob_kind(ATTACHMENT_BLOBS)
CONFIG_TTL_S = 10.0
DEDUP_SIZE = 200_000
#: The tables items.py names, by name.
SPECS = {spec.name: spec for spec in (EVENTS, SESSIONS, FEEDBACK, OUTCOMES, TRANSACTIONS, SPANS,
                                      LOGS, ATTACHMENTS)}


@dataclass
class ProjectConfig:
    rules: RuleTexts
    items: ItemConfig
    similarity: bool
    rate_limit_per_minute: int = 0
    rate_limit_burst: int = 0
    spike_protection: bool = False
    #: Changes whenever the configuration is rebuilt (ingest workers cache by it).
    version: int = 0

    @property
    def has_quotas(self) -> bool:
        return bool(self.rate_limit_per_minute or self.spike_protection)


@dataclass
class Processed:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    specs: dict[str, TableSpec] = field(default_factory=dict)
    event_id: str | None = None
    invalid: list[str] = field(default_factory=list)

    def add(self, spec: TableSpec, row: dict[str, Any]) -> None:
        self.specs[spec.name] = spec
        self.rows[spec.name].append(row)


class RecentIds:
    """Event ids seen lately, so an SDK's retry of the same event is stored once."""

    def __init__(self, size: int = DEDUP_SIZE) -> None:
        self._ids: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first_time(self, project_id: int, event_id: str) -> bool:
        key = (project_id, event_id)
        with self._lock:
            if key in self._ids:
                return False
            self._ids[key] = None
            if len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True

    def forget(self, project_id: int, event_id: str) -> None:
        with self._lock:
            self._ids.pop((project_id, event_id), None)


class EventProcessor:
    def __init__(self, db: Database, blobs: BlobStore, merge_threshold: float | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.resolver = IssueResolver(db, merge_threshold)
        self.recent = RecentIds()
        self._configs: dict[int, tuple[ProjectConfig, float]] = {}
        self._versions = 0

    # -- per-project configuration ---------------------------------------------------------

    def config(self, project_id: int) -> ProjectConfig:
        cached = self.cached_config(project_id)
        if cached is not None:
            return cached
        with self.db.session() as s:
            settings = s.get(ErrorSettings, project_id) or ErrorSettings(project_id=project_id)
            cfg = build_config(settings)
        self._versions += 1
        cfg.version = self._versions
        self._configs[project_id] = (cfg, time.monotonic())
        return cfg

    def cached_config(self, project_id: int) -> ProjectConfig | None:
        """The configuration if it is cached and fresh (no database access)."""
        cached = self._configs.get(project_id)
        if cached and time.monotonic() - cached[1] < CONFIG_TTL_S:
            return cached[0]
        return None

    def forget_config(self, project_id: int) -> None:
        self._configs.pop(project_id, None)

    def forget_events(self, project_id: int, processed: Processed) -> None:
        """The rows were not stored: let the client's retry of these events through."""
        for row in processed.rows.get(EVENTS.name, []):
            self.recent.forget(project_id, row["event_id"])

    # -- envelopes -------------------------------------------------------------------------

    def process(self, project_id: int, envelope: Envelope, received: dt.datetime) -> Processed:
        """All of an envelope in this process."""
        items = process_items(self.config(project_id).items, project_id, envelope, received)
        return self.finish(project_id, envelope.headers, items, received)

    def finish(self, project_id: int, headers: dict[str, Any], items: ItemsResult,
               received: dt.datetime) -> Processed:
        """The stateful rest of an envelope whose items :func:`process_items` turned into
        rows (here or in an ingest worker)."""
        out = Processed()
        header_id = headers.get("event_id")
        context = {"event_id": header_id if isinstance(header_id, str) else None}
        for kind in items.accepted:
            selfmetrics.child(selfmetrics.INGEST_ITEMS, "envelope", kind).inc()
        for kind in items.skipped:
            selfmetrics.child(selfmetrics.INGEST_ITEMS, "envelope", kind).inc()
        for name, rows in items.rows.items():
            spec = SPECS[name]
            for row in rows:
                out.add(spec, row)
        invalid = list(items.invalid)
        for prepared in items.events:
            try:
                self.finish_event(project_id, prepared, out)
            except ItemError as exc:
                invalid.append(("event", str(exc)[:300]))
        for item in items.deferred:
            try:
                _attachment(self, project_id, item, context, received, out)
                selfmetrics.child(selfmetrics.INGEST_ITEMS, "envelope", "attachment").inc()
            except ItemError as exc:
                invalid.append((item.type, str(exc)[:300]))
        for kind, message in invalid:
            out.invalid.append(f"{kind}: {message}"[:300])
            selfmetrics.child(selfmetrics.INGEST_REJECTED, "envelope",
                              f"invalid_{metric_kind(kind)}").inc()
            out.add(OUTCOMES, outcome(project_id, received, "invalid", message[:64],
                                      category(kind), 1))
        return out

    def process_event(self, project_id: int, raw: dict[str, Any], received: dt.datetime,
                      out: Processed) -> None:
        """One event, all in this process (events recorded from OpenTelemetry exceptions)."""
        prepared = prepare_event(self.config(project_id).items, project_id, raw, received)
        self.finish_event(project_id, prepared, out)

    def finishes_quickly(self, project_id: int, items: ItemsResult) -> bool:
        """Whether :meth:`finish` needs no database or blob store for ``items`` (every event
        joins a cached issue, nothing to store aside), so it may run on the event loop."""
        return not items.deferred and all(
            self.resolver.cached(project_id, e.grouping.hash) is not None for e in items.events)

    def finish_event(self, project_id: int, prepared: PreparedEvent, out: Processed) -> None:
        """Assign a prepared event to its issue and add its row, unless it is a duplicate."""
        event_id = prepared.event_id
        if not self.recent.first_time(project_id, event_id):
            out.event_id = out.event_id or event_id
            return
        try:
            issue_id = self.resolver.cached(project_id, prepared.grouping.hash)
            if issue_id is None:
                issue_id = self.resolver.resolve(project_id, prepared.grouping, prepared.seed(),
                                                 self.config(project_id).similarity)
        except BaseException:
            self.recent.forget(project_id, event_id)
            raise
        data = prepared.data(issue_id)
        row = prepared.row
        row["issue_id"] = issue_id
        row["data"] = data.decode()
        row["size"] = len(data)
        out.add(EVENTS, row)
        out.event_id = out.event_id or event_id


def build_config(settings: ErrorSettings) -> ProjectConfig:
    rules = RuleTexts(
        fingerprint_rules=settings.fingerprint_rules or "",
        stacktrace_rules=settings.stacktrace_rules or "",
        sensitive_fields=settings.sensitive_fields or "",
        safe_fields=settings.safe_fields or "",
        scrub_ip=bool(settings.scrub_ip_addresses),
    )
    return ProjectConfig(
        rules=rules,
        items=ItemConfig.from_texts(rules),
        similarity=settings.similarity_merge if settings.similarity_merge is not None else True,
        rate_limit_per_minute=settings.rate_limit_per_minute or 0,
        rate_limit_burst=settings.rate_limit_burst or 0,
        spike_protection=bool(settings.spike_protection),
    )


def _attachment(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any],
                received: dt.datetime, out: Processed) -> None:
    if len(item.payload) > MAX_ATTACHMENT:
        raise ItemError("attachment too large")
    event_id = ctx["event_id"] or ""
    attachment_id = uuid.uuid4().hex
    digest = hashlib.sha256(item.payload).hexdigest()
    key = blob_day_prefix(ATTACHMENT_BLOBS, pid, received.date()) + digest
    if not p.blobs.exists(key):  # content-addressed: identical files of a day are kept once
        p.blobs.put(key, item.payload)
    out.add(ATTACHMENTS, {
        "project_id": pid, "timestamp": received, "event_id": event_id,
        "attachment_id": attachment_id,
        "filename": str(item.headers.get("filename") or "attachment")[:300],
        "content_type": str(item.headers.get("content_type") or "application/octet-stream")[:100],
        "attachment_type": str(item.headers.get("attachment_type") or "event.attachment")[:64],
        "size": len(item.payload), "blob_key": key,
    })


