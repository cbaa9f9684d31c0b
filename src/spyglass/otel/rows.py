"""OTLP export requests → Arrow tables in the stored row shapes of ``schema.py``.

This is the hot path of OTLP ingest, so it builds columns directly (one Python list per
column, maps as flat key/value lists with offsets) instead of a dict per row. Each item is
checked on its own: an invalid span, log record or point is counted as rejected with a
reason, and the items around it are kept.
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from spyglass.otel.resources import resource_id
from spyglass.otel.schema import LOGS, METRIC_POINTS, SPANS

#: Longest attribute value, body or message kept; longer ones are cut (with a marker).
MAX_VALUE = 32 * 1024
TRUNCATED = "…[truncated]"
#: Instants outside these bounds are refused (both stores represent them).
MIN_NS = 946_684_800 * 10**9  # 2000-01-01
MAX_NS = 7_258_118_400 * 10**9  # 2200-01-01
UNKNOWN_SERVICE = "unknown_service"

#: Attribute keys moved into typed span columns: key → column (old and new semconv names).
HOT_SPAN_ATTRIBUTES = {
    "http.request.method": "http_method",
    "http.method": "http_method",
    "http.route": "http_route",
    "http.response.status_code": "http_status_code",
    "http.status_code": "http_status_code",
    "db.system.name": "db_system",
    "db.system": "db_system",
    "peer.service": "peer_service",
}


@dataclass
class Converted:
    """The rows of one request and what was refused."""

    table: pa.Table
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    #: resource_id → (service, attributes) of the resources the rows reference.
    resources: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)
    #: Exceptions recorded on spans or log records, for the error tracker
    #: (``spyglass.errors.record.SeenException`` dicts).
    exceptions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.table.num_rows

    def message(self) -> str:
        if not self.rejected:
            return ""
        parts = ", ".join(f"{reason} ({n})" for reason, n in self.reasons.most_common(5))
        return f"{self.rejected} rejected: {parts}"


# -- attribute values ------------------------------------------------------------------------


def value_text(v: Any) -> str:
    """An AnyValue as the text kept in a string map: scalars plainly, the rest as JSON."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        s = v.string_value
        return s if len(s) <= MAX_VALUE else s[:MAX_VALUE] + TRUNCATED
    if kind == "int_value":
        return str(v.int_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "double_value":
        return _float_text(v.double_value)
    if kind is None:
        return ""
    s = orjson.dumps(value_json(v)).decode()
    return s if len(s) <= MAX_VALUE else s[:MAX_VALUE] + TRUNCATED


def value_json(v: Any) -> Any:
    """An AnyValue as plain JSON data (bytes as base64)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "double_value":
        d = v.double_value
        return d if math.isfinite(d) else _float_text(d)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind == "array_value":
        return [value_json(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_json(kv.value) for kv in v.kvlist_value.values}
    return None


def _float_text(d: float) -> str:
    if math.isfinite(d) and d.is_integer() and abs(d) < 1e16:
        return str(int(d))
    return repr(d)


def attributes(kvs: Any) -> dict[str, str]:
    return {kv.key: value_text(kv.value) for kv in kvs}


def attributes_json(kvs: Any) -> dict[str, Any]:
    return {kv.key: value_json(kv.value) for kv in kvs}


class _MapColumn:
    """A map column built as flat keys and values with offsets (no per-row dicts for Arrow)."""

    __slots__ = ("keys", "offsets", "values")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[str] = []
        self.offsets: list[int] = [0]

    def add(self, mapping: dict[str, str]) -> None:
        self.keys.extend(mapping)
        self.values.extend(mapping.values())
        self.offsets.append(len(self.keys))

    def array(self) -> pa.Array:
        return pa.MapArray.from_arrays(
            pa.array(self.offsets, pa.int32()),
            pa.array(self.keys, pa.string()),
            pa.array(self.values, pa.string()),
        )


def _resource(resource: Any, seen: dict[int, tuple[str, dict[str, str]]]) -> tuple[str, int]:
    """(service, resource_id) of a Resource message, noting it in ``seen``."""
    attrs = attributes(resource.attributes)
    service = attrs.get("service.name") or UNKNOWN_SERVICE
    rid = resource_id(attrs)
    if rid:
        seen[rid] = (service, attrs)
    return service, rid


def _clip(s: str) -> str:
    return s if len(s) <= MAX_VALUE else s[:MAX_VALUE] + TRUNCATED


# -- spans -----------------------------------------------------------------------------------

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


#: Span columns filled per row, in the order of the tuples ``spans_table`` builds.
_SPAN_ROW = ("trace_id", "span_id", "parent_span_id", "trace_state", "service", "name", "kind",
             "start", "duration_ns", "status_code", "status_message", "http_method",
             "http_route", "http_status_code", "db_system", "peer_service", "scope_name",
             "scope_version", "events", "links", "resource_id")


def spans_table(request: Any, project_id: int, source: str = "otlp") -> Converted:
    """Rows of an ``ExportTraceServiceRequest``."""
    rows: list[tuple[Any, ...]] = []
    attrs = _MapColumn()
    resources: dict[int, tuple[str, dict[str, str]]] = {}
    reasons: Counter[str] = Counter()
    exceptions: list[dict[str, Any]] = []
    hot = HOT_SPAN_ATTRIBUTES

    for rs in request.resource_spans:
        service, rid = _resource(rs.resource, resources)
        for ss in rs.scope_spans:
            scope = ss.scope
            scope_name, scope_version = scope.name, scope.version
            for span in ss.spans:
                tid, sid, pid = span.trace_id, span.span_id, span.parent_span_id
                if len(tid) != 16 or tid == _ZERO_TRACE:
                    reasons["invalid trace_id"] += 1
                    continue
                if len(sid) != 8 or sid == _ZERO_SPAN:
                    reasons["invalid span_id"] += 1
                    continue
                if len(pid) not in (0, 8):
                    reasons["invalid parent_span_id"] += 1
                    continue
                start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
                if not MIN_NS <= start_ns < MAX_NS:
                    reasons["start time out of range"] += 1
                    continue
                method = route = db = peer = ""
                code = 0
                span_attrs: dict[str, str] = {}
                for kv in span.attributes:
                    v = kv.value
                    # Most values are short strings: skip the oneof inspection for them.
                    text = v.string_value
                    if not text or len(text) > MAX_VALUE:
                        text = value_text(v)
                    key = kv.key
                    column = hot.get(key)
                    if column is None:
                        span_attrs[key] = text
                    elif column == "http_method":
                        method = method or text[:32]
                    elif column == "http_route":
                        route = text[:512]
                    elif column == "http_status_code":
                        code = code or (int(text) if text.isdigit() and len(text) < 6 else 0)
                    elif column == "db_system":
                        db = db or text[:64]
                    else:
                        peer = text[:256]
                name = span.name
                if span.HasField("status"):
                    status = span.status
                    status_code, status_message = status.code & 0xFF, _clip(status.message)
                else:
                    status_code, status_message = 0, ""
                events = span.events
                links = span.links
                rows.append((
                    tid.hex(), sid.hex(), pid.hex(), span.trace_state, service,
                    name if len(name) <= MAX_VALUE else _clip(name), span.kind & 0xFF,
                    start_ns // 1000, end_ns - start_ns if end_ns > start_ns else 0,
                    status_code, status_message, method, route,
                    code if code <= 65535 else 0, db, peer, scope_name, scope_version,
                    _span_events(events) if events else "", _span_links(links) if links else "",
                    rid,
                ))
                attrs.add(span_attrs)
                if events:
                    for e in events:
                        if e.name == "exception":
                            exceptions.append(_span_exception(e, tid, sid, service, name,
                                                              span_attrs, resources.get(rid)))

    n = len(rows)
    schema = SPANS.arrow_schema
    columns = {
        name: pa.array(values, schema.field(name).type)
        for name, values in zip(_SPAN_ROW, zip(*rows) if rows else [()] * len(_SPAN_ROW))
    }
    columns["project_id"] = pa.array([project_id] * n, pa.uint64())
    columns["attributes"] = attrs.array()
    columns["source"] = pa.array([source] * n, pa.string())
    return Converted(_table(schema, columns), sum(reasons.values()), reasons, resources,
                     exceptions)


def _span_exception(event: Any, tid: bytes, sid: bytes, service: str, name: str,
                    span_attrs: dict[str, str], resource: tuple[str, dict[str, str]] | None,
                    ) -> dict[str, Any]:
    """An ``exception`` span event (OTel semantic conventions) for the error tracker."""
    e = attributes(event.attributes)
    return {
        "type": e.get("exception.type", ""), "message": e.get("exception.message", ""),
        "stacktrace": e.get("exception.stacktrace", ""),
        "escaped": e.get("exception.escaped", "").lower() == "true",
        "time_unix_nano": event.time_unix_nano, "trace_id": tid.hex(), "span_id": sid.hex(),
        "service": service, "name": name, "source": "span",
        "attributes": {**span_attrs, **e}, "resource": resource[1] if resource else {},
    }


def _span_events(items: Any) -> str:
    return orjson.dumps([
        {
            "time_unix_nano": e.time_unix_nano,
            "name": e.name,
            "attributes": attributes(e.attributes),
        }
        for e in items
    ]).decode()


def _span_links(items: Any) -> str:
    return orjson.dumps([
        {
            "trace_id": link.trace_id.hex(),
            "span_id": link.span_id.hex(),
            "trace_state": link.trace_state,
            "attributes": attributes(link.attributes),
        }
        for link in items
    ]).decode()


def _table(schema: pa.Schema, columns: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


# -- logs ------------------------------------------------------------------------------------


def logs_table(request: Any, project_id: int, source: str = "otlp") -> Converted:
    """Rows of an ``ExportLogsServiceRequest``."""
    now_ns = time.time_ns()
    timestamps: list[int] = []
    observed: list[int] = []
    services: list[str] = []
    severities: list[int] = []
    severity_texts: list[str] = []
    bodies: list[str] = []
    trace_ids: list[str] = []
    span_ids: list[str] = []
    event_names: list[str] = []
    scope_names: list[str] = []
    attrs = _MapColumn()
    resource_ids: list[int] = []
    resources: dict[int, tuple[str, dict[str, str]]] = {}
    reasons: Counter[str] = Counter()
    exceptions: list[dict[str, Any]] = []

    for rl in request.resource_logs:
        service, rid = _resource(rl.resource, resources)
        for sl in rl.scope_logs:
            scope_name = sl.scope.name
            for record in sl.log_records:
                tid, sid = record.trace_id, record.span_id
                if len(tid) not in (0, 16):
                    reasons["invalid trace_id"] += 1
                    continue
                if len(sid) not in (0, 8):
                    reasons["invalid span_id"] += 1
                    continue
                seen_ns = record.observed_time_unix_nano or now_ns
                when_ns = record.time_unix_nano or seen_ns
                if not (MIN_NS <= when_ns < MAX_NS and MIN_NS <= seen_ns < MAX_NS):
                    reasons["timestamp out of range"] += 1
                    continue
                body = record.body
                kind = body.WhichOneof("value")
                text = _clip(body.string_value) if kind == "string_value" else (
                    value_text(body) if kind else "")
                timestamps.append(when_ns // 1000)
                observed.append(seen_ns // 1000)
                services.append(service)
                severities.append(min(record.severity_number, 255) if record.severity_number > 0
                                  else 0)
                severity_texts.append(record.severity_text[:32])
                bodies.append(text)
                trace_ids.append("" if tid == _ZERO_TRACE else tid.hex())
                span_ids.append("" if sid == _ZERO_SPAN else sid.hex())
                event_names.append(record.event_name[:256])
                scope_names.append(scope_name)
                record_attrs = attributes(record.attributes)
                attrs.add(record_attrs)
                resource_ids.append(rid)
                if "exception.type" in record_attrs or "exception.message" in record_attrs:
                    resource = resources.get(rid)
                    exceptions.append({
                        "type": record_attrs.get("exception.type", ""),
                        "message": record_attrs.get("exception.message", ""),
                        "stacktrace": record_attrs.get("exception.stacktrace", ""),
                        "escaped": record_attrs.get("exception.escaped", "").lower() == "true",
                        "time_unix_nano": when_ns, "trace_id": trace_ids[-1],
                        "span_id": span_ids[-1], "service": service, "name": text,
                        "source": "log", "severity_number": severities[-1],
                        "scope": scope_name, "attributes": record_attrs,
                        "resource": resource[1] if resource else {},
                    })

    n = len(timestamps)
    columns = {
        "project_id": pa.array([project_id] * n, pa.uint64()),
        "timestamp": pa.array(timestamps, pa.timestamp("us")),
        "observed": pa.array(observed, pa.timestamp("us")),
        "service": pa.array(services, pa.string()),
        "severity_number": pa.array(severities, pa.uint8()),
        "severity_text": pa.array(severity_texts, pa.string()),
        "body": pa.array(bodies, pa.string()),
        "trace_id": pa.array(trace_ids, pa.string()),
        "span_id": pa.array(span_ids, pa.string()),
        "event_name": pa.array(event_names, pa.string()),
        "scope_name": pa.array(scope_names, pa.string()),
        "attributes": attrs.array(),
        "resource_id": pa.array(resource_ids, pa.uint64()),
        "source": pa.array([source] * n, pa.string()),
    }
    return Converted(_table(LOGS.arrow_schema, columns), sum(reasons.values()), reasons,
                     resources, exceptions)


# -- metrics ---------------------------------------------------------------------------------

_NAN = math.nan
_NUMERIC_DEFAULTS: dict[str, Any] = {
    "value": _NAN, "count": 0, "sum": _NAN, "min": _NAN, "max": _NAN,
    "bounds": [], "bucket_counts": [], "scale": 0, "zero_count": 0, "zero_threshold": 0.0,
    "positive_offset": 0, "positive_counts": [], "negative_offset": 0, "negative_counts": [],
    "quantiles": [], "quantile_values": [],
}


class _Points:
    """Column lists for metric points."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {
            f.name: [] for f in METRIC_POINTS.arrow_schema
            if f.name not in ("project_id", "attributes")
        }
        self.attrs = _MapColumn()

    def add(self, common: dict[str, Any], values: dict[str, Any], point_attrs: dict[str, str],
            ) -> None:
        cols = self.cols
        for name, default in _NUMERIC_DEFAULTS.items():
            cols[name].append(values.get(name, default))
        for name, value in common.items():
            cols[name].append(value)
        self.attrs.add(point_attrs)

    def table(self, project_id: int) -> pa.Table:
        schema = METRIC_POINTS.arrow_schema
        n = len(self.cols["metric"])
        arrays = {
            name: pa.array(values, schema.field(name).type) for name, values in self.cols.items()
        }
        arrays["project_id"] = pa.array([project_id] * n, pa.uint64())
        arrays["attributes"] = self.attrs.array()
        return _table(schema, arrays)


def metrics_table(request: Any, project_id: int) -> Converted:
    """Rows of an ``ExportMetricsServiceRequest``: one row per data point."""
    points = _Points()
    reasons: Counter[str] = Counter()
    resources: dict[int, tuple[str, dict[str, str]]] = {}
    for rm in request.resource_metrics:
        service, rid = _resource(rm.resource, resources)
        for sm in rm.scope_metrics:
            scope_name = sm.scope.name
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    reasons["metric without data"] += 1
                    continue
                if not metric.name:
                    reasons["metric without name"] += 1
                    continue
                data = getattr(metric, kind)
                temporality = getattr(data, "aggregation_temporality", 0)
                for point in data.data_points:
                    if not MIN_NS <= point.time_unix_nano < MAX_NS:
                        reasons["timestamp out of range"] += 1
                        continue
                    start_ns = point.start_time_unix_nano
                    if start_ns and not MIN_NS <= start_ns < MAX_NS:
                        reasons["start time out of range"] += 1
                        continue
                    point_attrs = attributes(point.attributes)
                    common = {
                        "metric": metric.name[:256],
                        "type": kind,
                        "unit": metric.unit[:64],
                        "description": metric.description[:1024],
                        "temporality": temporality & 0xFF,
                        "monotonic": bool(getattr(data, "is_monotonic", False)),
                        "service": service,
                        "series_id": _series_id(metric.name, scope_name, point_attrs, rid),
                        "timestamp": point.time_unix_nano // 1000,
                        "start_time": start_ns // 1000,
                        "flags": point.flags & 0xFFFFFFFF,
                        "exemplars": _exemplars(point) if kind != "summary" else "",
                        "scope_name": scope_name,
                        "resource_id": rid,
                    }
                    points.add(common, _point_values(kind, point), point_attrs)
    table = points.table(project_id)
    return Converted(table, sum(reasons.values()), reasons, resources)


def _series_id(name: str, scope: str, point_attrs: dict[str, str], rid: int) -> int:
    h = hashlib.blake2b(digest_size=8)
    h.update(orjson.dumps([name, scope, rid, point_attrs], option=orjson.OPT_SORT_KEYS))
    return int.from_bytes(h.digest(), "big")


def _number(point: Any) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double


def _point_values(kind: str, p: Any) -> dict[str, Any]:
    if kind in ("gauge", "sum"):
        return {"value": _number(p)}
    if kind == "histogram":
        return {
            "count": p.count,
            "sum": p.sum if p.HasField("sum") else _NAN,
            "min": p.min if p.HasField("min") else _NAN,
            "max": p.max if p.HasField("max") else _NAN,
            "bounds": [_float_text(b) for b in p.explicit_bounds],
            "bucket_counts": [str(c) for c in p.bucket_counts],
        }
    if kind == "exponential_histogram":
        return {
            "count": p.count,
            "sum": p.sum if p.HasField("sum") else _NAN,
            "min": p.min if p.HasField("min") else _NAN,
            "max": p.max if p.HasField("max") else _NAN,
            "scale": p.scale,
            "zero_count": p.zero_count,
            "zero_threshold": p.zero_threshold,
            "positive_offset": p.positive.offset,
            "positive_counts": [str(c) for c in p.positive.bucket_counts],
            "negative_offset": p.negative.offset,
            "negative_counts": [str(c) for c in p.negative.bucket_counts],
        }
    # summary
    return {
        "count": p.count,
        "sum": p.sum,
        "quantiles": [_float_text(q.quantile) for q in p.quantile_values],
        "quantile_values": [_float_text(q.value) for q in p.quantile_values],
    }


def _exemplars(point: Any) -> str:
    if not point.exemplars:
        return ""
    return orjson.dumps([
        {
            "time_unix_nano": e.time_unix_nano,
            "value": _json_number(_number(e)),
            "trace_id": e.trace_id.hex(),
            "span_id": e.span_id.hex(),
            "attributes": attributes(e.filtered_attributes),
        }
        for e in point.exemplars
    ]).decode()


def _json_number(d: float) -> float | str:
    return d if math.isfinite(d) else _float_text(d)
