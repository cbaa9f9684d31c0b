"""Normalizing Sentry events: one shape for every SDK, with sizes capped.

SDKs disagree on small things (``exception`` as a list or ``{"values": [...]}``, tags as a
dict or as pairs, timestamps as numbers or RFC 3339 strings). Everything downstream —
scrubbing, grouping, storage, pages — sees the shape produced here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from spyglass.errors.useragent import contexts_from_user_agent, user_agent_of

MAX_STRING = 8192
MAX_KEY = 256
MAX_FRAMES = 250
MAX_BREADCRUMBS = 100
MAX_EXCEPTIONS = 25
MAX_TAGS = 100
MAX_DEPTH = 12
LEVELS = {"fatal", "error", "warning", "info", "debug"}
LEVEL_ALIASES = {"warn": "warning", "critical": "fatal", "log": "info", "sample": "info"}


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts.astimezone(dt.UTC).replace(tzinfo=None) if ts.tzinfo else ts


def parse_timestamp(value: Any) -> dt.datetime | None:
    """Seconds since the epoch (int, float or numeric string) or an RFC 3339 string → naive UTC."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
        if isinstance(value, str) and value:
            try:
                return dt.datetime.fromtimestamp(float(value), dt.UTC).replace(tzinfo=None)
            except ValueError:
                return _utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (ValueError, OverflowError, OSError):
        return None
    return None


def cap_dict(node: dict[str, Any]) -> None:
    """At most 500 entries, keys of at most 256 characters (part of :func:`trim_in_place`)."""
    if len(node) > 500:
        for k in list(node)[500:]:
            del node[k]
    # The longest key, measured in C (a generator here cost more than the rest).
    if node and max(map(len, node)) > MAX_KEY:
        items = list(node.items())
        node.clear()
        node.update((k[:MAX_KEY], v) for k, v in items)


def trim_in_place(root: dict[str, Any]) -> dict[str, Any]:
    """Cap strings (``MAX_STRING``), keys (256), containers (500 entries) and nesting
    (``MAX_DEPTH``, deeper containers become ``"[…]"``) so one event cannot grow without bound.

    In place and without recursion, for a freshly parsed JSON object: most events need no
    change at all, and copying them cost more than the rest of normalizing."""
    # Most containers need no change: each is first scanned over its values alone (no keys
    # or indices to unpack), and walked again with them only when something must be cut.
    stack: list[tuple[Any, int]] = [(root, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        node, depth = pop()
        if type(node) is dict:
            cap_dict(node)
            values: Any = node.values()
        else:  # a list
            if len(node) > 500:
                del node[500:]
            values = node
        change = False
        for v in values:
            tv = type(v)
            if tv is str:
                if len(v) > MAX_STRING:
                    change = True
            elif tv is dict or tv is list:
                if depth >= MAX_DEPTH:
                    change = True
                else:
                    push((v, depth + 1))
        if change:  # rare: a string too long, or containers nested too deep
            for k, v in node.items() if type(node) is dict else enumerate(node):
                tv = type(v)
                if tv is str:
                    if len(v) > MAX_STRING:
                        node[k] = v[: MAX_STRING - 1] + "…"
                elif depth >= MAX_DEPTH and (tv is dict or tv is list):
                    node[k] = "[…]"
    return root


def _values(value: Any) -> list[Any]:
    """``{"values": [...]}`` or a bare list → a list."""
    if isinstance(value, dict):
        value = value.get("values")
    return value if isinstance(value, list) else []


def _text(value: Any, limit: int = 200) -> str:
    if value is None:
        return ""
    return (value if isinstance(value, str) else str(value))[:limit]


def normalize_tags(value: Any) -> list[list[str]]:
    pairs = value.items() if isinstance(value, dict) else value if isinstance(value, list) else []
    out: list[list[str]] = []
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0] not in (None, ""):
            out.append([_text(pair[0], 200), _text(pair[1], 200)])
        if len(out) >= MAX_TAGS:
            break
    return out


def _frames(stacktrace: Any) -> dict[str, Any] | None:
    if not isinstance(stacktrace, dict):
        return None
    frames = [f for f in stacktrace.get("frames") or [] if isinstance(f, dict)]
    if len(frames) > MAX_FRAMES:
        # Keep both ends: the entry point and, above all, where it crashed (the last frames).
        half = MAX_FRAMES // 2
        frames = frames[:half] + frames[-half:]
    return {**stacktrace, "frames": frames}


def normalize_exception(values: Any) -> list[dict[str, Any]]:
    out = []
    for exc in _values(values)[-MAX_EXCEPTIONS:]:
        if not isinstance(exc, dict):
            continue
        exc = dict(exc)
        exc["type"] = _text(exc.get("type"), 256)
        exc["value"] = _text(exc.get("value"), MAX_STRING)
        st = _frames(exc.get("stacktrace"))
        if st is not None:
            exc["stacktrace"] = st
        if not exc["type"] and not exc["value"] and st is None:
            continue
        out.append(exc)
    return out


def message_of(event: dict[str, Any]) -> str:
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        formatted = logentry.get("formatted")
        if isinstance(formatted, str) and formatted:
            return formatted
        msg = logentry.get("message")
        params = logentry.get("params")
        if isinstance(msg, str):
            try:
                if isinstance(params, list) and params:
                    return msg % tuple(params)
                if isinstance(params, dict) and params:
                    return msg % params
            except (TypeError, ValueError, KeyError):
                pass
            return msg
    message = event.get("message")
    if isinstance(message, dict):
        return _text(message.get("formatted") or message.get("message"), MAX_STRING)
    return _text(message, MAX_STRING)


def _derive_contexts(e: dict[str, Any]) -> None:
    """Browser SDKs send a User-Agent, not contexts: derive browser/os/device as Sentry does."""
    contexts = e.setdefault("contexts", {})
    if all(k in contexts for k in ("browser", "os")):
        return
    ua = user_agent_of(e)
    for name, ctx in contexts_from_user_agent(ua).items():
        contexts.setdefault(name, ctx)


def normalize_event(event: dict[str, Any], received: dt.datetime,
                    trim: bool = True) -> dict[str, Any]:
    """Normalize ``event`` (a freshly parsed JSON object, changed in place) and return it;
    ``received`` is naive UTC. ``trim=False`` leaves trimming to the caller (ingest trims
    while scrubbing, in the same walk); nothing here depends on sizes being capped."""
    e = trim_in_place(event) if trim else event
    try:
        e["event_id"] = uuid.UUID(str(e.get("event_id"))).hex
    except ValueError:
        e["event_id"] = uuid.uuid4().hex
    ts = parse_timestamp(e.get("timestamp")) or received
    # Clock skew: a timestamp far in the future is the client's clock, not the event's time.
    if ts > received + dt.timedelta(minutes=1):
        ts = received
    e["timestamp"] = ts.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    e["received"] = received.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    level = _text(e.get("level") or "error", 16).lower()
    e["level"] = LEVEL_ALIASES.get(level, level if level in LEVELS else "error")
    e["platform"] = _text(e.get("platform") or "other", 32)
    for key in ("release", "environment", "transaction", "logger", "server_name", "dist"):
        if key in e:
            e[key] = _text(e[key], 200) if e[key] is not None else ""
    e["tags"] = normalize_tags(e.get("tags"))
    exceptions = normalize_exception(e.get("exception"))
    if exceptions:
        e["exception"] = {"values": exceptions}
    else:
        e.pop("exception", None)
    if isinstance(e.get("threads"), (dict, list)):
        e["threads"] = {"values": [t for t in _values(e["threads"]) if isinstance(t, dict)]}
    crumbs = [b for b in _values(e.get("breadcrumbs")) if isinstance(b, dict)]
    if crumbs:
        e["breadcrumbs"] = {"values": crumbs[-MAX_BREADCRUMBS:]}
    else:
        e.pop("breadcrumbs", None)
    message = message_of(e)
    if message:
        e["message"] = message
    for key in ("user", "request", "contexts", "sdk", "extra", "modules"):
        if key in e and not isinstance(e[key], dict):
            e.pop(key)
    _derive_contexts(e)
    if e.get("fingerprint") is not None and not (
        isinstance(e["fingerprint"], list) and all(isinstance(x, (str, int, float)) for x in e["fingerprint"])
    ):
        e.pop("fingerprint")
    return e
