"""Envelope items → rows, the stateless part: everything that needs no database.

Normalizing, scrubbing and grouping an event, and turning sessions, feedback, client reports,
transactions, spans and logs into rows, depend only on the item and the project's rules. This
module does that and nothing else, so it runs in the server process or in an ingest worker
process alike (see :mod:`spyglass.errors.offload`), and it imports no storage code: tables are
named by their names, which the server process maps to its table specs. What needs state is
left to :mod:`spyglass.errors.processing`: the event's issue (the resolver), duplicates, and
attachments (the blob store).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from spyglass.errors.envelope import Envelope, Item
from spyglass.errors.grouping import Grouping, GroupingConfig, RuleSyntaxError, group_event
from spyglass.errors.normalize import normalize_event, parse_timestamp
from spyglass.errors.scrub import ScrubRules, scrub_event
from spyglass.errors.transactions import streamed_span_rows, transaction_rows

MAX_EVENT = 1024 * 1024
SESSION_STATUSES = {"ok", "exited", "errored", "crashed", "abnormal"}
#: Items that need the server process (attachments go to the blob store).
DEFERRED_TYPES = {"attachment"}

# Table names (the specs live in spyglass.errors.schema and spyglass.otel.schema).
EVENTS = "events"
SESSIONS = "sessions"
FEEDBACK = "feedback"
OUTCOMES = "outcomes"
TRANSACTIONS = "transactions"
SPANS = "spans"
LOGS = "logs"


class ItemError(ValueError):
    """One item is unusable; it is counted as invalid and skipped."""


@dataclass(frozen=True)
class RuleTexts:
    """A project's processing rules as stored: small, picklable, hashable."""

    fingerprint_rules: str = ""
    stacktrace_rules: str = ""
    sensitive_fields: str = ""
    safe_fields: str = ""
    scrub_ip: bool = False


@dataclass
class ItemConfig:
    scrub: ScrubRules
    grouping: GroupingConfig

    @classmethod
    def from_texts(cls, texts: RuleTexts) -> ItemConfig:
        try:
            grouping = GroupingConfig.from_text(texts.fingerprint_rules, texts.stacktrace_rules)
        except RuleSyntaxError:
            # Rules are validated when saved; an invalid stored text must not stop ingest.
            grouping = GroupingConfig()
        scrub = ScrubRules.for_project(texts.sensitive_fields, texts.safe_fields, texts.scrub_ip)
        return cls(scrub, grouping)


@dataclass
class PreparedEvent:
    """An event ready to store but for its issue: the server process assigns that."""

    event_id: str
    grouping: Grouping
    #: What the issue resolver reads of the event, for a new issue and similarity, as JSON:
    #: most events join a known issue and never need it parsed.
    seed_json: bytes
    #: The ``events`` row without ``issue_id``, ``data`` and ``size``.
    row: dict[str, Any]
    #: The stored event as JSON, an object still missing its leading ``"issue_id"`` member.
    body: bytes

    def seed(self) -> dict[str, Any]:
        return orjson.loads(self.seed_json)

    def data(self, issue_id: int) -> bytes:
        # (``body`` is never empty: a normalized event has its id, level, timestamp ...)
        return b'{"issue_id":%d,' % issue_id + self.body[1:]


@dataclass
class ItemsResult:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    events: list[PreparedEvent] = field(default_factory=list)
    #: Items for the server process, in envelope order.
    deferred: list[Item] = field(default_factory=list)
    #: Metric kinds of the items processed, and of those skipped as unknown.
    accepted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: (item kind, message) of the invalid items.
    invalid: list[tuple[str, str]] = field(default_factory=list)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)


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


_SEED_FRAME_KEYS = ("module", "filename", "abs_path", "function", "in_app", "package",
                    "platform")
_SEED_KEYS = ("platform", "level", "release", "timestamp", "logger", "transaction", "message",
              "logentry", "tags")


def issue_seed(event: dict[str, Any]) -> dict[str, Any]:
    """The part of a normalized event that grouping and the similarity model read, and that a
    new issue takes its level, release and first-seen time from."""
    seed = {k: event[k] for k in _SEED_KEYS if k in event}
    values = []
    for exc in (event.get("exception") or {}).get("values") or []:
        st = exc.get("stacktrace") if isinstance(exc.get("stacktrace"), dict) else {}
        frames = [{k: f[k] for k in _SEED_FRAME_KEYS if k in f}
                  for f in st.get("frames") or [] if isinstance(f, dict)]
        values.append({"type": exc.get("type"), "value": exc.get("value"),
                       "mechanism": exc.get("mechanism"), "stacktrace": {"frames": frames}})
    if values:
        seed["exception"] = {"values": values}
    return seed


def prepare_event(cfg: ItemConfig, project_id: int, raw: dict[str, Any],
                  received: dt.datetime) -> PreparedEvent:
    """Normalize, scrub and group one event (``raw`` is changed in place)."""
    # Trimmed while scrubbed: one walk over the event instead of two.
    event = scrub_event(normalize_event(raw, received, trim=False), cfg.scrub, trim=True)
    grouping = group_event(event, cfg.grouping)
    event["grouping"] = {"hash": grouping.hash, "variant": grouping.variant,
                         "components": grouping.components}
    exc = ((event.get("exception") or {}).get("values") or [{}])[-1]
    contexts = event.get("contexts") or {}
    trace = contexts.get("trace") if isinstance(contexts.get("trace"), dict) else {}
    row = {
        "project_id": project_id,
        "timestamp": parse_timestamp(event["timestamp"]) or received,
        "received_at": received,
        "event_id": event["event_id"],
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
    }
    event.pop("issue_id", None)  # the server's to set
    return PreparedEvent(event["event_id"], grouping, orjson.dumps(issue_seed(event)), row,
                         orjson.dumps(event))


#: Envelope item types in Sentry's protocol documentation: each has its own metric label.
ITEM_TYPES = frozenset({
    "event", "transaction", "attachment", "session", "sessions", "user_report", "feedback",
    "client_report", "replay_event", "replay_recording", "replay_video", "profile",
    "profile_chunk", "check_in", "statsd", "metric_buckets", "span", "log", "otel_log",
    "trace_metric", "security", "raw_security", "nel", "form_data", "unreal_report",
})


def metric_kind(kind: str) -> str:
    """The metric label of an item type: a client must not mint label values at will."""
    return kind if kind in ITEM_TYPES else "other"


def category(kind: str) -> str:
    return {"event": "error", "transaction": "transaction", "attachment": "attachment",
            "session": "session", "sessions": "session"}.get(kind, "default")


def outcome(project_id: int, at: dt.datetime, outcome: str, reason: str, category: str,
            quantity: int) -> dict[str, Any]:
    return {"project_id": project_id, "timestamp": at, "outcome": outcome, "reason": reason,
            "category": category, "quantity": quantity}


def json_object(item: Item, limit: int = MAX_EVENT) -> dict[str, Any]:
    if len(item.payload) > limit:
        raise ItemError(f"item larger than {limit} bytes")
    value = item.json()
    if not isinstance(value, dict):
        raise ItemError("payload is not a JSON object")
    return value


def process_items(cfg: ItemConfig, project_id: int, envelope: Envelope,
                  received: dt.datetime) -> ItemsResult:
    """Every item of ``envelope`` the stateless way; a bad item never spoils the others."""
    out = ItemsResult()
    header_id = envelope.headers.get("event_id")
    context = {"event_id": header_id if isinstance(header_id, str) else None}
    for item in envelope.items:
        kind = item.type or "unknown"
        if kind in DEFERRED_TYPES:
            out.deferred.append(item)
            continue
        handler = HANDLERS.get(kind)
        if handler is None:
            # Accepted and counted until the feature that reads it exists.
            out.skipped.append(metric_kind(kind))
            continue
        try:
            handler(cfg, project_id, item, context, received, out)
            out.accepted.append(kind)
        except (ItemError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
            out.invalid.append((kind, str(exc)[:300]))
    return out


# -- item handlers -------------------------------------------------------------------------

Handler = Callable[[ItemConfig, int, Item, dict[str, Any], dt.datetime, ItemsResult], None]


def _event(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any], received: dt.datetime,
           out: ItemsResult) -> None:
    event = json_object(item)
    if "event_id" not in event and ctx["event_id"]:
        event["event_id"] = ctx["event_id"]
    out.events.append(prepare_event(cfg, pid, event, received))


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


def _session(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any],
             received: dt.datetime, out: ItemsResult) -> None:
    s = json_object(item)
    attrs = s.get("attrs") if isinstance(s.get("attrs"), dict) else {}
    if not attrs.get("release"):
        raise ItemError("session without attrs.release")
    status = str(s.get("status") or "ok")
    if status not in SESSION_STATUSES:
        raise ItemError(f"unknown session status {status!r}")
    out.add(SESSIONS, _session_row(pid, s, attrs, received, status, 1, bool(s.get("init"))))


def _sessions(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any],
              received: dt.datetime, out: ItemsResult) -> None:
    body = json_object(item)
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


def _user_report(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any],
                 received: dt.datetime, out: ItemsResult) -> None:
    r = json_object(item)
    out.add(FEEDBACK, {
        "project_id": pid, "timestamp": received, "feedback_id": uuid.uuid4().hex,
        "event_id": str(r.get("event_id") or ctx["event_id"] or "").replace("-", "")[:32],
        "name": str(r.get("name") or "")[:200], "email": str(r.get("email") or "")[:200],
        "comments": str(r.get("comments") or "")[:8192], "url": "", "release": "",
        "environment": "",
    })


def _feedback(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any],
              received: dt.datetime, out: ItemsResult) -> None:
    e = json_object(item)
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


def _transaction(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any],
                 received: dt.datetime, out: ItemsResult) -> None:
    event = scrub_event(json_object(item), cfg.scrub)
    summary, spans = transaction_rows(pid, event, received, user_key(event))
    out.add(TRANSACTIONS, summary)
    for row in spans:
        out.add(SPANS, row)


def _span(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any],
          received: dt.datetime, out: ItemsResult) -> None:
    payload = scrub_event(json_object(item, MAX_EVENT * 10), cfg.scrub)
    summaries, spans = streamed_span_rows(pid, payload, received)
    if not spans:
        raise ItemError("span item without a usable span")
    for row in summaries:
        out.add(TRANSACTIONS, row)
    for row in spans:
        out.add(SPANS, row)


def _client_report(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any],
                   received: dt.datetime, out: ItemsResult) -> None:
    r = json_object(item)
    at = parse_timestamp(r.get("timestamp")) or received
    for key in ("discarded_events", "rate_limited_events", "filtered_events",
                "filtered_sampling_events"):
        for d in r.get(key) or []:
            if isinstance(d, dict) and int(d.get("quantity") or 0) > 0:
                out.add(OUTCOMES, outcome(pid, at, "client_discard",
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


def _log(cfg: ItemConfig, pid: int, item: Item, ctx: dict[str, Any], received: dt.datetime,
         out: ItemsResult) -> None:
    """A ``log`` item (Sentry structured logs): one ``logs`` row per entry, source ``sentry``."""
    items = json_object(item, MAX_EVENT * 10).get("items")
    if not isinstance(items, list):
        raise ItemError("log item without items")
    for entry in items:
        if not isinstance(entry, dict):
            continue
        entry = scrub_event(entry, cfg.scrub)
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
    "user_report": _user_report,
    "feedback": _feedback,
    "client_report": _client_report,
    "transaction": _transaction,
    "span": _span,
    "log": _log,
}
