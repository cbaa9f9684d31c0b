"""Sentry ``transaction`` items: their spans go to the shared spans table, and one summary row
per transaction goes to ``transactions`` for the Performance pages.

The summary table (``TRANSACTIONS`` in :mod:`spyglass.errors.schema`) exists so that
throughput, percentiles, failure rate, Apdex and users per transaction name are a scan of small
typed columns, not of every span's attribute map.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from spyglass.errors.normalize import parse_timestamp, trim_in_place

#: Statuses that do not count as failures (Sentry's definition of failure rate).
NOT_FAILURES = {"ok", "cancelled", "unknown", ""}
CLIENT_OPS = ("http.client", "db")


def _kind(op: str, root: bool) -> int:
    if root and op.startswith("http.server"):
        return 2
    if op.startswith(CLIENT_OPS):
        return 3
    return 1


def _status_code(data: dict[str, Any]) -> int:
    for key in ("http.response.status_code", "http.status_code", "status_code"):
        value = data.get(key)
        try:
            if value is not None:
                return max(0, min(int(value), 65535))
        except (TypeError, ValueError):
            continue
    return 0


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k)[:200]: (v if isinstance(v, str) else str(v))[:1000]
            for k, v in list(value.items())[:100] if v is not None}


def _span_row(project_id: int, span: dict[str, Any], trace_id: str, service: str, name: str,
              root: bool, received: dt.datetime, extra: dict[str, str]) -> dict[str, Any] | None:
    start = parse_timestamp(span.get("start_timestamp"))
    end = parse_timestamp(span.get("timestamp"))
    span_id = str(span.get("span_id") or "").lower()[:16]
    if start is None or not span_id:
        return None
    end = end if end is not None and end >= start else start
    op = str(span.get("op") or "")[:100]
    data = span.get("data") if isinstance(span.get("data"), dict) else {}
    status = str(span.get("status") or "")[:64]
    attributes = {**_strings(data), **_strings(span.get("tags")), **extra}
    if op:
        attributes["sentry.op"] = op
    return {
        "project_id": project_id, "trace_id": trace_id, "span_id": span_id,
        "parent_span_id": str(span.get("parent_span_id") or "").lower()[:16],
        "trace_state": "", "service": service, "name": name[:500] or op, "kind": _kind(op, root),
        "start": start, "duration_ns": int((end - start).total_seconds() * 1e9),
        "status_code": 0 if status in NOT_FAILURES else 2, "status_message": status,
        "http_method": str(data.get("http.request.method") or data.get("http.method") or "")[:16],
        "http_route": str(data.get("http.route") or "")[:200],
        "http_status_code": _status_code(data),
        "db_system": str(data.get("db.system") or "")[:64],
        "peer_service": "", "scope_name": "", "scope_version": "",
        "attributes": attributes, "resource_id": 0, "events": "", "links": "", "source": "sentry",
    }


def transaction_rows(project_id: int, event: dict[str, Any], received: dt.datetime,
                     user_key: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The summary row and the span rows of one transaction event (trimmed in place)."""
    event = trim_in_place(event)
    contexts = event.get("contexts") if isinstance(event.get("contexts"), dict) else {}
    trace = contexts.get("trace") if isinstance(contexts.get("trace"), dict) else {}
    trace_id = str(trace.get("trace_id") or "").lower()[:32]
    if len(trace_id) != 32:
        raise ValueError("transaction without contexts.trace.trace_id")
    name = str(event.get("transaction") or "")[:500]
    release = str(event.get("release") or "")[:200]
    environment = str(event.get("environment") or "")[:64]
    service = str(event.get("server_name") or "")[:100]
    root = {**trace, "start_timestamp": event.get("start_timestamp"),
            "timestamp": event.get("timestamp")}
    extra = {k: v for k, v in (("sentry.release", release), ("sentry.environment", environment),
                               ("enduser.id", user_key), ("sentry.transaction", name)) if v}
    root_row = _span_row(project_id, root, trace_id, service, name, True, received, extra)
    if root_row is None:
        raise ValueError("transaction without start_timestamp or contexts.trace.span_id")
    spans = [root_row]
    for span in (event.get("spans") or [])[:1000]:
        if isinstance(span, dict):
            row = _span_row(project_id, span, trace_id, service,
                            str(span.get("description") or ""), False, received, {})
            if row is not None:
                spans.append(row)
    measurements = {
        str(k)[:64]: str(v.get("value"))
        for k, v in (event.get("measurements") or {}).items()
        if isinstance(v, dict) and isinstance(v.get("value"), (int, float))
    } if isinstance(event.get("measurements"), dict) else {}
    summary = {
        "project_id": project_id, "timestamp": root_row["start"], "trace_id": trace_id,
        "span_id": root_row["span_id"], "name": name, "op": str(trace.get("op") or "")[:100],
        "duration_ms": root_row["duration_ns"] / 1e6, "status": root_row["status_message"],
        "http_status_code": root_row["http_status_code"], "user_key": user_key,
        "release": release, "environment": environment,
        "platform": str(event.get("platform") or "")[:32], "service": service,
        "source": "sentry", "measurements": measurements,
    }
    return summary, spans


def _attr_values(attributes: Any) -> dict[str, Any]:
    """Span v2 attributes ``{key: {"type": ..., "value": ...}}`` → ``{key: value}``."""
    if not isinstance(attributes, dict):
        return {}
    return {str(k): (v.get("value") if isinstance(v, dict) else v) for k, v in attributes.items()}


def streamed_span_rows(project_id: int, payload: dict[str, Any], received: dt.datetime,
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of a ``span`` item: span v2 (``{"items": [...]}``, what streaming SDKs send) or a
    single v1 span. Segment spans (the local roots) also give a transactions row."""
    spans = payload.get("items") if isinstance(payload.get("items"), list) else [payload]
    summaries: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for raw in spans[:1000]:
        if not isinstance(raw, dict):
            continue
        attrs = _attr_values(raw.get("attributes")) if "attributes" in raw else _strings(raw.get("data"))
        trace_id = str(raw.get("trace_id") or "").lower()[:32]
        if len(trace_id) != 32:
            continue
        span = {
            "span_id": raw.get("span_id"), "parent_span_id": raw.get("parent_span_id"),
            "start_timestamp": raw.get("start_timestamp"),
            "timestamp": raw.get("end_timestamp", raw.get("timestamp")),
            "op": attrs.get("sentry.op") or raw.get("op") or "",
            "status": "ok" if raw.get("status") in ("ok", None) else str(raw.get("status")),
            "data": attrs,
        }
        name = str(raw.get("name") or raw.get("description") or "")
        segment = bool(raw.get("is_segment")) or attrs.get("sentry.segment.id") == raw.get("span_id")
        service = str(attrs.get("service.name") or attrs.get("server.address") or "")[:100]
        row = _span_row(project_id, span, trace_id, service, name, segment, received, {})
        if row is None:
            continue
        rows.append(row)
        if segment:
            user = next((f"{k.split('.')[1]}:{attrs[k]}" for k in ("user.id", "user.email",
                         "user.username", "user.ip_address") if attrs.get(k)), "")
            summaries.append({
                "project_id": project_id, "timestamp": row["start"], "trace_id": trace_id,
                "span_id": row["span_id"],
                "name": str(attrs.get("sentry.segment.name") or name)[:500],
                "op": str(span["op"])[:100], "duration_ms": row["duration_ns"] / 1e6,
                "status": row["status_message"], "http_status_code": row["http_status_code"],
                "user_key": user[:200], "release": str(attrs.get("sentry.release") or "")[:200],
                "environment": str(attrs.get("sentry.environment") or "")[:64],
                "platform": str(attrs.get("sentry.platform") or "")[:32], "service": service,
                "source": "sentry", "measurements": {},
            })
    return summaries, rows
