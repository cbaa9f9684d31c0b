"""Turning envelope items into rows: normalize, scrub, group, and assign to an issue.

Runs in a worker thread per request. Everything an item becomes (rows for several tables,
attachment blobs) is collected in a :class:`Processed`; the endpoint writes the rows through
the batching writer and answers only when they are durable. A bad item is counted as invalid
and skipped; it never spoils the items next to it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from spyglass.errors.envelope import Envelope, Item
from spyglass.errors.grouping import (
    GroupingConfig,
    RuleSyntaxError,
    group_event,
)
from spyglass.errors.issues import IssueResolver
from spyglass.errors.models import ErrorSettings
from spyglass.errors.normalize import normalize_event, parse_timestamp
from spyglass.errors.schema import ATTACHMENTS, EVENTS, FEEDBACK, OUTCOMES, SESSIONS
from spyglass.errors.scrub import ScrubRules, scrub_event
from spyglass.errors.transactions import TRANSACTIONS, streamed_span_rows, transaction_rows
from spyglass.otel.schema import LOGS, SPANS
from spyglass.kernel import selfmetrics
from spyglass.kernel.blobs import BlobStore
from spyglass.kernel.jobs.retention import blob_day_prefix, register_blob_kind
from spyglass.kernel.meta.db import Database
from spyglass.kernel.telemetry import TableSpec

MAX_EVENT = 1024 * 1024
MAX_ATTACHMENT = 100 * 1024 * 1024
ATTACHMENT_BLOBS = "attachments"
register_blob_kind(ATTACHMENT_BLOBS)
CONFIG_TTL_S = 10.0
DEDUP_SIZE = 200_000
SESSION_STATUSES = {"ok", "exited", "errored", "crashed", "abnormal"}


class ItemError(ValueError):
    """One item is unusable; it is counted as invalid and skipped."""


@dataclass
class ProjectConfig:
    scrub: ScrubRules
    grouping: GroupingConfig
    similarity: bool
    rate_limit_per_minute: int = 0
    rate_limit_burst: int = 0
    spike_protection: bool = False


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


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def user_key(event: dict[str, Any]) -> str:
    user = event.get("user")
    if not isinstance(user, dict):
        return ""
    for field_name in ("id", "email", "username", "ip_address"):
        value = user.get(field_name)
        if value not in (None, ""):
            return f"{field_name}:{value}"[:200]
    return ""


def derived_tags(event: dict[str, Any]) -> dict[str, str]:
    """The event's tags plus the ones Sentry derives (browser, os, url ...) for distributions."""
    tags = {k: v for k, v in event.get("tags") or []}
    contexts = event.get("contexts") or {}
    for ctx, tag in (("browser", "browser"), ("os", "os"), ("runtime", "runtime"),
                     ("device", "device")):
        c = contexts.get(ctx)
        if isinstance(c, dict) and c.get("name"):
            tags.setdefault(tag, f"{c['name']} {c.get('version', '')}".strip()[:200])
            tags.setdefault(f"{tag}.name", str(c["name"])[:200])
    for key in ("release", "environment", "level", "server_name", "transaction", "dist"):
        if event.get(key):
            tags.setdefault(key, str(event[key])[:200])
    request = event.get("request")
    if isinstance(request, dict) and isinstance(request.get("url"), str):
        tags.setdefault("url", request["url"].split("?")[0][:200])
    handled = _mechanism_handled(event)
    if handled is not None:
        tags.setdefault("handled", "yes" if handled else "no")
    key = user_key(event)
    if key:
        tags.setdefault("user", key)
    return tags


def _mechanism_handled(event: dict[str, Any]) -> bool | None:
    values = (event.get("exception") or {}).get("values") or []
    for exc in reversed(values):
        mech = exc.get("mechanism") if isinstance(exc, dict) else None
        if isinstance(mech, dict) and "handled" in mech:
            return bool(mech["handled"])
    return None


class EventProcessor:
    def __init__(self, db: Database, blobs: BlobStore, merge_threshold: float | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.resolver = IssueResolver(db, merge_threshold)
        self.recent = RecentIds()
        self._configs: dict[int, tuple[ProjectConfig, float]] = {}

    # -- per-project configuration ---------------------------------------------------------

    def config(self, project_id: int) -> ProjectConfig:
        cached = self._configs.get(project_id)
        if cached and time.monotonic() - cached[1] < CONFIG_TTL_S:
            return cached[0]
        with self.db.session() as s:
            settings = s.get(ErrorSettings, project_id) or ErrorSettings(project_id=project_id)
            cfg = build_config(settings)
        self._configs[project_id] = (cfg, time.monotonic())
        return cfg

    def forget_config(self, project_id: int) -> None:
        self._configs.pop(project_id, None)

    def forget_events(self, project_id: int, processed: Processed) -> None:
        """The rows were not stored: let the client's retry of these events through."""
        for row in processed.rows.get(EVENTS.name, []):
            self.recent.forget(project_id, row["event_id"])

    # -- envelopes -------------------------------------------------------------------------

    def process(self, project_id: int, envelope: Envelope, received: dt.datetime) -> Processed:
        out = Processed()
        header_id = envelope.headers.get("event_id")
        context = {
            "event_id": header_id if isinstance(header_id, str) else None,
            "sent_at": envelope.headers.get("sent_at"),
        }
        for item in envelope.items:
            kind = item.type or "unknown"
            handler = HANDLERS.get(kind)
            try:
                if handler is None:
                    # Accepted and counted until the feature that reads it exists.
                    selfmetrics.INGEST_ITEMS.labels("envelope", _metric_kind(kind)).inc()
                    continue
                handler(self, project_id, item, context, received, out)
                selfmetrics.INGEST_ITEMS.labels("envelope", kind).inc()
            except (ItemError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
                out.invalid.append(f"{kind}: {exc}"[:300])
                selfmetrics.INGEST_REJECTED.labels("envelope", f"invalid_{_metric_kind(kind)}").inc()
                out.add(OUTCOMES, _outcome(project_id, received, "invalid", str(exc)[:64],
                                           _category(kind), 1))
        return out

    def process_event(self, project_id: int, raw: dict[str, Any], received: dt.datetime,
                      out: Processed) -> None:
        cfg = self.config(project_id)
        event = scrub_event(normalize_event(raw, received), cfg.scrub)
        if not self.recent.first_time(project_id, event["event_id"]):
            out.event_id = out.event_id or event["event_id"]
            return
        try:
            grouping = group_event(event, cfg.grouping)
            issue_id = self.resolver.resolve(project_id, grouping, event, cfg.similarity)
        except BaseException:
            self.recent.forget(project_id, event["event_id"])
            raise
        event["issue_id"] = issue_id
        event["grouping"] = {"hash": grouping.hash, "variant": grouping.variant,
                             "components": grouping.components}
        data = orjson.dumps(event)
        exc = ((event.get("exception") or {}).get("values") or [{}])[-1]
        contexts = event.get("contexts") or {}
        trace = contexts.get("trace") if isinstance(contexts.get("trace"), dict) else {}
        out.add(EVENTS, {
            "project_id": project_id,
            "timestamp": parse_timestamp(event["timestamp"]) or received,
            "received_at": received,
            "event_id": event["event_id"],
            "issue_id": issue_id,
            "group_hash": grouping.hash,
            "level": event["level"],
            "platform": event["platform"],
            "release": event.get("release") or "",
            "environment": event.get("environment") or "",
            "title": grouping.title[:2000],
            "culprit": grouping.culprit[:500],
            "exception_type": str(exc.get("type") or "")[:200],
            "exception_value": str(exc.get("value") or "")[:2000],
            "transaction": event.get("transaction") or "",
            "user_key": user_key(event),
            "trace_id": str(trace.get("trace_id") or "")[:32],
            "tags": derived_tags(event),
            "data": data.decode(),
            "size": len(data),
        })
        out.event_id = out.event_id or event["event_id"]


def build_config(settings: ErrorSettings) -> ProjectConfig:
    try:
        grouping = GroupingConfig.from_text(settings.fingerprint_rules or "",
                                            settings.stacktrace_rules or "")
    except RuleSyntaxError:
        # Rules are validated when saved; an invalid stored text must not stop ingest.
        grouping = GroupingConfig()
    return ProjectConfig(
        scrub=ScrubRules.for_project(settings.sensitive_fields or "", settings.safe_fields or "",
                                     bool(settings.scrub_ip_addresses)),
        grouping=grouping,
        similarity=settings.similarity_merge if settings.similarity_merge is not None else True,
        rate_limit_per_minute=settings.rate_limit_per_minute or 0,
        rate_limit_burst=settings.rate_limit_burst or 0,
        spike_protection=bool(settings.spike_protection),
    )


def _metric_kind(kind: str) -> str:
    return kind[:32] if kind.replace("_", "").isalnum() else "other"


def _category(kind: str) -> str:
    return {"event": "error", "transaction": "transaction", "attachment": "attachment",
            "session": "session", "sessions": "session"}.get(kind, "default")


def _outcome(project_id: int, at: dt.datetime, outcome: str, reason: str, category: str,
             quantity: int) -> dict[str, Any]:
    return {"project_id": project_id, "timestamp": at, "outcome": outcome, "reason": reason,
            "category": category, "quantity": quantity}


def _json_object(item: Item, limit: int = MAX_EVENT) -> dict[str, Any]:
    if len(item.payload) > limit:
        raise ItemError(f"item larger than {limit} bytes")
    value = item.json()
    if not isinstance(value, dict):
        raise ItemError("payload is not a JSON object")
    return value


# -- item handlers -------------------------------------------------------------------------

Handler = Callable[[EventProcessor, int, Item, dict[str, Any], dt.datetime, Processed], None]


def _event(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any], received: dt.datetime,
           out: Processed) -> None:
    event = _json_object(item)
    if "event_id" not in event and ctx["event_id"]:
        event["event_id"] = ctx["event_id"]
    p.process_event(pid, event, received, out)


def _session_row(pid: int, s: dict[str, Any], attrs: dict[str, Any], received: dt.datetime,
                 status: str, quantity: int, init: bool) -> dict[str, Any]:
    started = parse_timestamp(s.get("started")) or received
    return {
        "project_id": pid, "timestamp": started, "received_at": received,
        "session_id": str(s.get("sid") or "")[:64], "distinct_id": str(s.get("did") or "")[:200],
        "release": str(attrs.get("release") or "")[:200],
        "environment": str(attrs.get("environment") or "")[:64],
        "status": status, "errors": min(int(s.get("errors") or 0), 2**31),
        "seq": max(0, int(s.get("seq") or 0)), "init": init, "quantity": quantity,
    }


def _session(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any],
             received: dt.datetime, out: Processed) -> None:
    s = _json_object(item)
    attrs = s.get("attrs") if isinstance(s.get("attrs"), dict) else {}
    if not attrs.get("release"):
        raise ItemError("session without attrs.release")
    status = str(s.get("status") or "ok")
    if status not in SESSION_STATUSES:
        raise ItemError(f"unknown session status {status!r}")
    out.add(SESSIONS, _session_row(pid, s, attrs, received, status, 1, bool(s.get("init"))))


def _sessions(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any],
              received: dt.datetime, out: Processed) -> None:
    body = _json_object(item)
    attrs = body.get("attrs") if isinstance(body.get("attrs"), dict) else {}
    if not attrs.get("release"):
        raise ItemError("sessions without attrs.release")
    for agg in body.get("aggregates") or []:
        if not isinstance(agg, dict):
            continue
        for status in ("exited", "errored", "abnormal", "crashed"):
            n = int(agg.get(status) or 0)
            if n > 0:
                row = _session_row(pid, agg, attrs, received, status, n, True)
                row["session_id"] = ""
                out.add(SESSIONS, row)


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


def _user_report(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any],
                 received: dt.datetime, out: Processed) -> None:
    r = _json_object(item)
    out.add(FEEDBACK, {
        "project_id": pid, "timestamp": received, "feedback_id": uuid.uuid4().hex,
        "event_id": str(r.get("event_id") or ctx["event_id"] or "").replace("-", "")[:32],
        "name": str(r.get("name") or "")[:200], "email": str(r.get("email") or "")[:200],
        "comments": str(r.get("comments") or "")[:8192], "url": "", "release": "",
        "environment": "",
    })


def _feedback(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any],
              received: dt.datetime, out: Processed) -> None:
    e = _json_object(item)
    fb = ((e.get("contexts") or {}).get("feedback")) or {}
    if not isinstance(fb, dict) or not fb.get("message"):
        raise ItemError("feedback without contexts.feedback.message")
    out.add(FEEDBACK, {
        "project_id": pid,
        "timestamp": parse_timestamp(e.get("timestamp")) or received,
        "feedback_id": str(e.get("event_id") or uuid.uuid4().hex)[:32],
        "event_id": str(fb.get("associated_event_id") or "").replace("-", "")[:32],
        "name": str(fb.get("name") or "")[:200],
        "email": str(fb.get("contact_email") or "")[:200],
        "comments": str(fb.get("message"))[:8192], "url": str(fb.get("url") or "")[:500],
        "release": str(e.get("release") or "")[:200],
        "environment": str(e.get("environment") or "")[:64],
    })


def _transaction(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any],
                 received: dt.datetime, out: Processed) -> None:
    event = scrub_event(_json_object(item), p.config(pid).scrub)
    summary, spans = transaction_rows(pid, event, received, user_key(event))
    out.add(TRANSACTIONS, summary)
    for row in spans:
        out.add(SPANS, row)


def _span(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any],
          received: dt.datetime, out: Processed) -> None:
    payload = scrub_event(_json_object(item, MAX_EVENT * 10), p.config(pid).scrub)
    summaries, spans = streamed_span_rows(pid, payload, received)
    if not spans:
        raise ItemError("span item without a usable span")
    for row in summaries:
        out.add(TRANSACTIONS, row)
    for row in spans:
        out.add(SPANS, row)


def _client_report(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any],
                   received: dt.datetime, out: Processed) -> None:
    r = _json_object(item)
    at = parse_timestamp(r.get("timestamp")) or received
    for key in ("discarded_events", "rate_limited_events", "filtered_events",
                "filtered_sampling_events"):
        for d in r.get(key) or []:
            if isinstance(d, dict) and int(d.get("quantity") or 0) > 0:
                out.add(OUTCOMES, _outcome(pid, at, "client_discard",
                                           str(d.get("reason") or key)[:64],
                                           str(d.get("category") or "default")[:32],
                                           int(d["quantity"])))


#: Sentry log levels → OTLP SeverityNumber (the first of each range).
LOG_SEVERITIES = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17,
                  "fatal": 21}


def _log_attribute(value: Any) -> str:
    v = value.get("value") if isinstance(value, dict) else value
    if isinstance(v, bool):
        return "true" if v else "false"
    text = v if isinstance(v, str) else orjson.dumps(v).decode() if v is not None else ""
    return text[:32768]


def _log(p: EventProcessor, pid: int, item: Item, ctx: dict[str, Any], received: dt.datetime,
         out: Processed) -> None:
    """A ``log`` item (Sentry structured logs): one ``logs`` row per entry, source ``sentry``."""
    items = _json_object(item, MAX_EVENT * 10).get("items")
    if not isinstance(items, list):
        raise ItemError("log item without items")
    scrub = p.config(pid).scrub
    for entry in items:
        if not isinstance(entry, dict):
            continue
        entry = scrub_event(entry, scrub)
        raw = entry.get("attributes")
        attrs = {str(k)[:256]: _log_attribute(v) for k, v in
                 (raw.items() if isinstance(raw, dict) else ())}
        level = str(entry.get("level") or "info").lower()[:32]
        number = entry.get("severity_number") or attrs.get("sentry.severity_number")
        number = int(number) if str(number).isdigit() else LOG_SEVERITIES.get(level, 0)
        when = parse_timestamp(entry.get("timestamp")) or received
        out.add(LOGS, {
            "project_id": pid, "timestamp": when, "observed": received,
            "service": (attrs.get("sentry.service") or attrs.get("service.name")
                        or attrs.get("server.address") or "")[:200],
            "severity_number": min(max(number, 0), 24), "severity_text": level,
            "body": str(entry.get("body") or "")[:32768],
            "trace_id": str(entry.get("trace_id") or "").replace("-", "").lower()[:32],
            "span_id": str(entry.get("span_id") or "").lower()[:16],
            "event_name": "", "scope_name": attrs.get("sentry.origin", "")[:200],
            "attributes": attrs, "resource_id": 0, "source": "sentry",
        })


HANDLERS: dict[str, Handler] = {
    "event": _event,
    "session": _session,
    "sessions": _sessions,
    "attachment": _attachment,
    "user_report": _user_report,
    "feedback": _feedback,
    "client_report": _client_report,
    "transaction": _transaction,
    "span": _span,
    "log": _log,
}
