"""Reading traces for the trace pages: search, the waterfall tree and its critical path, and the
logs and errors that belong to one trace.

Search follows Jaeger's semantics: a trace matches when one of its spans matches every filter
(service, operation, status, duration, attributes) within the time range; the results then
describe whole traces (root, duration, span count, services, errors).

The waterfall is computed here, not in the browser, so the page reads without JavaScript and
the tests can check it: :func:`build_tree` nests spans (orphans become top-level rows),
corrects clock skew between services, and :func:`critical_path` finds the chain of spans that
determines the trace's end-to-end latency.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spyglass.kernel.telemetry import TelemetryStore
from spyglass.otel.api import SpanOut

# -- search -------------------------------------------------------------------------------------

#: Time ranges offered by the search form: label → seconds.
PERIODS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "2d": 2 * 86400,
           "7d": 7 * 86400, "14d": 14 * 86400}
DEFAULT_PERIOD = "1h"
LIMITS = (20, 50, 100, 500)
DEFAULT_LIMIT = 50

#: Attribute keys stored in typed columns (see docs/opentelemetry.md), old and new names.
TEXT_COLUMNS = {
    "http.route": "http_route",
    "http.request.method": "http_method", "http.method": "http_method",
    "db.system": "db_system", "db.system.name": "db_system",
    "peer.service": "peer_service",
}
INT_COLUMNS = {"http.response.status_code": "http_status_code",
               "http.status_code": "http_status_code"}
ATTRIBUTE = re.compile(r"^([^=!]+?)(!?=)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class AttributeFilter:
    key: str
    value: str
    negate: bool = False

    def __str__(self) -> str:
        value = self.value if self.value and not re.search(r"[\s\"']", self.value) \
            else '"' + self.value.replace('"', '\\"') + '"'
        return f"{self.key}{'!=' if self.negate else '='}{value}"


def parse_attributes(text: str) -> tuple[list[AttributeFilter], list[str]]:
    """``http.route=/cart k8s.pod.name="a b" error=true`` → filters, and the parts not
    understood (shown to the user, never silently dropped)."""
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = text.split()
    filters, bad = [], []
    for part in parts:
        match = ATTRIBUTE.match(part)
        if match is None or not match.group(1).strip():
            bad.append(part)
            continue
        filters.append(AttributeFilter(match.group(1).strip(), match.group(3),
                                       match.group(2) == "!="))
    return filters, bad


@dataclass
class Search:
    project_id: int
    since: dt.datetime
    until: dt.datetime
    service: str = ""
    operation: str = ""
    min_ms: float | None = None
    max_ms: float | None = None
    status: str = ""  # "", "ok" or "error"
    attributes: list[AttributeFilter] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT


@dataclass
class TraceHit:
    trace_id: str
    start: dt.datetime
    duration_ms: float
    spans: int
    errors: int
    root_service: str
    root_name: str
    has_root: bool
    #: (service, spans of it, errors of it), by number of spans.
    services: list[tuple[str, int, int]]


def _us(store: TelemetryStore, column: str) -> str:
    """``column`` (a DateTime64(6)) as integer microseconds since the epoch."""
    if store.dialect == "clickhouse":
        return f"toUnixTimestamp64Micro({column})"
    return f"epoch_us({column})"


def _arg_min(store: TelemetryStore, value: str, by: str) -> str:
    return f"argMin({value}, {by})" if store.dialect == "clickhouse" else f"arg_min({value}, {by})"


def _attribute_condition(f: AttributeFilter, params: dict[str, Any], n: int) -> str:
    """SQL matching one ``key=value``: a typed column, the span's attributes, or its resource's."""
    key, value = f.key, f.value
    k, v = f"ak{n}", f"av{n}"
    if key in ("error", "otel.status_code", "status") and value.lower() in (
            "true", "false", "error", "ok", "unset"):
        want = value.lower() in ("true", "error")
        cond = "status_code = 2" if want else "status_code != 2"
    elif key in ("service.name", "service"):
        params[v] = value
        cond = f"service = {{{v}:String}}"
    elif key in ("span.name", "name"):
        params[v] = value
        cond = f"name = {{{v}:String}}"
    elif key in TEXT_COLUMNS:
        params[v] = value
        cond = f"{TEXT_COLUMNS[key]} = {{{v}:String}}"
    elif key in INT_COLUMNS:
        if not value.isdigit() or int(value) > 65535:
            cond = "1 = 0"
        else:
            params[v] = int(value)
            cond = f"{INT_COLUMNS[key]} = {{{v}:UInt16}}"
    else:
        params[k], params[v] = key, value
        cond = (f"(attributes[{{{k}:String}}] = {{{v}:String}} OR resource_id IN ("
                f"SELECT resource_id FROM resources WHERE project_id = {{p:UInt64}} "
                f"AND attributes[{{{k}:String}}] = {{{v}:String}}))")
    return f"NOT coalesce({cond}, false)" if f.negate else cond


def _span_conditions(s: Search, params: dict[str, Any]) -> list[str]:
    where = ["project_id = {p:UInt64}", "start >= {since:DateTime64(6)}",
             "start < {until:DateTime64(6)}"]
    params.update(p=s.project_id, since=s.since, until=s.until)
    if s.service:
        where.append("service = {service:String}")
        params["service"] = s.service
    if s.operation:
        where.append("name = {operation:String}")
        params["operation"] = s.operation
    if s.min_ms is not None:
        where.append("duration_ns >= {min_ns:UInt64}")
        params["min_ns"] = int(max(s.min_ms, 0) * 1e6)
    if s.max_ms is not None:
        where.append("duration_ns <= {max_ns:UInt64}")
        params["max_ns"] = int(max(s.max_ms, 0) * 1e6)
    if s.status == "error":
        where.append("status_code = 2")
    elif s.status == "ok":
        where.append("status_code != 2")
    for n, f in enumerate(s.attributes):
        where.append(_attribute_condition(f, params, n))
    return where


def search_traces(store: TelemetryStore, s: Search) -> list[TraceHit]:
    """The most recent traces with a span matching every filter, newest first."""
    params: dict[str, Any] = {}
    where = " AND ".join(_span_conditions(s, params))
    found = store.rows(
        f"SELECT trace_id, min(start) AS first FROM spans WHERE {where} "
        f"GROUP BY trace_id ORDER BY first DESC LIMIT {int(s.limit)}", params)
    return describe_traces(store, s.project_id, [r["trace_id"] for r in found])


def _in_list(prefix: str, values: list[str], params: dict[str, Any]) -> str:
    names = []
    for n, value in enumerate(values):
        params[f"{prefix}{n}"] = value
        names.append(f"{{{prefix}{n}:String}}")
    return ", ".join(names)


def describe_traces(store: TelemetryStore, project_id: int, trace_ids: list[str]
                    ) -> list[TraceHit]:
    """Summaries of whole traces, in the order of ``trace_ids``."""
    if not trace_ids:
        return []
    params: dict[str, Any] = {"p": project_id}
    ids = _in_list("t", trace_ids, params)
    start_us = _us(store, "start")
    end_offset = ("toInt64(intDiv(duration_ns, 1000))" if store.dialect == "clickhouse"
                  else "CAST(duration_ns // 1000 AS BIGINT)")
    groups = store.rows(
        f"SELECT trace_id, service, count(DISTINCT span_id) AS spans, "
        f"sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) AS errors, "
        f"min({start_us}) AS first_us, max({start_us} + {end_offset}) AS last_us, "
        f"{_arg_min(store, 'name', 'start')} AS first_name "
        f"FROM spans WHERE project_id = {{p:UInt64}} AND trace_id IN ({ids}) "
        f"GROUP BY trace_id, service", params)
    roots = store.rows(
        f"SELECT trace_id, service, name, start FROM spans WHERE project_id = {{p:UInt64}} "
        f"AND trace_id IN ({ids}) AND parent_span_id = '' ORDER BY start", params)
    root_of: dict[str, dict[str, Any]] = {}
    for r in roots:
        root_of.setdefault(r["trace_id"], r)
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for g in groups:
        by_trace.setdefault(g["trace_id"], []).append(g)
    hits = []
    for trace_id in trace_ids:
        parts = by_trace.get(trace_id)
        if not parts:
            continue
        first = min(int(g["first_us"]) for g in parts)
        last = max(int(g["last_us"]) for g in parts)
        earliest = min(parts, key=lambda g: int(g["first_us"]))
        root = root_of.get(trace_id)
        hits.append(TraceHit(
            trace_id=trace_id,
            start=dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=first),
            duration_ms=(last - first) / 1000,
            spans=sum(int(g["spans"]) for g in parts),
            errors=sum(int(g["errors"]) for g in parts),
            root_service=root["service"] if root else earliest["service"],
            root_name=root["name"] if root else earliest["first_name"],
            has_root=root is not None,
            services=sorted(((g["service"], int(g["spans"]), int(g["errors"])) for g in parts),
                            key=lambda t: (-t[1], t[0])),
        ))
    return hits


def services_seen(store: TelemetryStore, project_id: int, since: dt.datetime) -> list[str]:
    return [r["service"] for r in store.rows(
        "SELECT DISTINCT service FROM spans WHERE project_id = {p:UInt64} "
        "AND start >= {since:DateTime64(6)} ORDER BY service LIMIT 500",
        {"p": project_id, "since": since})]


def facets(store: TelemetryStore, project_id: int, since: dt.datetime,
           service: str = "") -> tuple[list[str], list[str]]:
    """Services seen since ``since``, and the operations (of ``service`` when given)."""
    params: dict[str, Any] = {"p": project_id, "since": since}
    base = "FROM spans WHERE project_id = {p:UInt64} AND start >= {since:DateTime64(6)}"
    services = [r["service"] for r in store.rows(
        f"SELECT DISTINCT service {base} ORDER BY service LIMIT 500", params)]
    if service:
        params["s"] = service
        base += " AND service = {s:String}"
    operations = [r["name"] for r in store.rows(
        f"SELECT name, count(*) AS n {base} GROUP BY name ORDER BY n DESC, name LIMIT 300",
        params)]
    return services, sorted(operations)


# -- the waterfall ------------------------------------------------------------------------------


def _us_of(value: dt.datetime) -> int:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return (value - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


@dataclass
class Node:
    """One span in the waterfall, with times in microseconds after clock-skew correction."""

    span: SpanOut
    start_us: int
    end_us: int
    depth: int = 0
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None
    #: The parent span id is set but no span of the trace has it.
    orphan: bool = False
    #: How far this span (and its subtree) was moved to fit its parent, in microseconds.
    skew_us: int = 0
    #: Pieces of this span's own time on the critical path: (start_us, end_us).
    critical: list[tuple[int, int]] = field(default_factory=list)
    descendants: int = 0

    @property
    def span_id(self) -> str:
        return self.span.span_id

    @property
    def duration_us(self) -> int:
        return self.end_us - self.start_us


@dataclass
class Tree:
    roots: list[Node]
    rows: list[Node]  # depth-first order, as the waterfall draws them
    start_us: int
    end_us: int

    @property
    def duration_us(self) -> int:
        return max(self.end_us - self.start_us, 0)

    @property
    def critical_ids(self) -> list[str]:
        return [n.span_id for n in self.rows if n.critical]


def build_tree(spans: Iterable[SpanOut]) -> Tree:
    """Nest spans by parent id; spans whose parent is missing become top-level rows.

    Children are ordered by start. A cycle of parent ids (a broken producer) cannot hang the
    walk: every span is placed once, and spans not reached from a top-level row are added
    as top-level rows themselves.
    """
    nodes: dict[str, Node] = {}
    for s in spans:
        if s.span_id in nodes:
            continue
        start = _us_of(s.start)
        nodes[s.span_id] = Node(s, start, start + s.duration_ns // 1000)
    roots: list[Node] = []
    for node in nodes.values():
        pid = node.span.parent_span_id
        parent = nodes.get(pid) if pid and pid != node.span_id else None
        if parent is None:
            node.orphan = bool(pid)
            roots.append(node)
        else:
            node.parent = parent
            parent.children.append(node)
    placed: set[str] = set()
    rows: list[Node] = []

    def order(items: list[Node]) -> list[Node]:
        return sorted(items, key=lambda n: (n.start_us, n.span.name, n.span_id))

    def walk(top: Node) -> None:
        stack = [(top, 0)]
        while stack:
            node, depth = stack.pop()
            if node.span_id in placed:
                continue
            placed.add(node.span_id)
            node.depth = depth
            node.children = order([c for c in node.children if c.span_id not in placed])
            rows.append(node)
            stack.extend((c, depth + 1) for c in reversed(node.children))

    roots = order(roots)
    for root in roots:
        walk(root)
    for node in nodes.values():  # parent cycles: never reached from a root
        if node.span_id not in placed:
            node.orphan, node.parent = True, None
            roots.append(node)
            walk(node)
    _adjust_skew(roots)
    for node in reversed(rows):
        node.descendants = sum(1 + c.descendants for c in node.children)
    start = min((n.start_us for n in rows), default=0)
    end = max((n.end_us for n in rows), default=0)
    tree = Tree(roots, rows, start, end)
    critical_path(tree)
    return tree


def _shift(node: Node, delta: int) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        n.start_us += delta
        n.end_us += delta
        stack.extend(n.children)


def _adjust_skew(roots: list[Node]) -> None:
    """Move a span of another service into its parent when the two clocks disagree.

    As Jaeger does: a child whose service differs from its parent's runs on another clock; if
    it starts before its parent or ends after it while being no longer than the parent, it is
    centred in the parent (the network latency split evenly both ways), and its whole subtree
    moves with it. Spans of the same service share a clock and are left as they are: a child
    that outlives its parent there is real (asynchronous work).
    """
    stack = list(roots)
    while stack:
        node = stack.pop()
        parent = node.parent
        if (parent is not None and node.span.service != parent.span.service
                and node.duration_us <= parent.duration_us
                and (node.start_us < parent.start_us or node.end_us > parent.end_us)):
            delta = parent.start_us + (parent.duration_us - node.duration_us) // 2 - node.start_us
            _shift(node, delta)
            node.skew_us = delta
        stack.extend(node.children)


def critical_path(tree: Tree) -> list[tuple[str, int, int]]:
    """The critical path: the chain of spans whose own work (or waiting) determined when the
    trace ended, as Jaeger computes it.

    Walking backwards from the end of a span: the child that finished last is on the path;
    the parent's own time after that child's end is on the path; then the child's own path
    (recursively); then the cursor moves to that child's start, and the next child on the
    path is the one that finished last *before* the cursor. A child still running when the
    cursor's child started did not hold anything up and is skipped (the parent's own time
    covers that stretch). Children that outlive their parent are cut at the parent's end.
    The top-level spans (the root, orphans whose parent is missing, several roots) are
    children of one virtual span covering the whole trace; there, overlapping spans are cut
    at the cursor instead of skipped, so the path covers the trace end to end.

    Returns the path's segments as (span_id, start_us, end_us), earliest first, and records
    each span's segments in ``Node.critical``.
    """
    segments: list[tuple[str, int, int]] = []

    def visit(node: Node | None, children: list[Node], lo: int, hi: int) -> None:
        # The path through ``node`` (None: the virtual root) within [lo, hi].
        cursor = hi
        for child in sorted(children, key=lambda c: (c.end_us, -c.start_us), reverse=True):
            if cursor <= lo:
                break
            end = min(child.end_us, hi)  # a child outliving its parent is cut at its end
            if child.start_us >= cursor or end <= lo:
                continue
            if end > cursor:
                if node is not None:
                    continue  # still running when a later sibling started: not blocking
                end = cursor  # top level: overlapping roots share the trace's time
            if node is not None and end < cursor:
                segments.append((node.span_id, end, cursor))
            start = max(child.start_us, lo)
            visit(child, child.children, start, end)
            cursor = start
        if node is not None and cursor > lo:
            segments.append((node.span_id, lo, cursor))

    if tree.roots:
        try:
            visit(None, tree.roots, tree.start_us, tree.end_us)
        except RecursionError:  # a chain of ~1000 nested spans: no path rather than no page
            segments.clear()
    segments.sort(key=lambda s: s[1])
    by_id = {n.span_id: n for n in tree.rows}
    for span_id, lo, hi in segments:
        if hi > lo:
            by_id[span_id].critical.append((lo, hi))
    for node in tree.rows:
        node.critical.sort()
    return [s for s in segments if s[2] > s[1]]


# -- what belongs to a trace --------------------------------------------------------------------

#: Logs and errors are looked up this long before and after the trace's spans.
AROUND = dt.timedelta(hours=1)
MAX_LOGS = 1000


def trace_logs(store: TelemetryStore, project_id: int, trace_id: str, start: dt.datetime,
               end: dt.datetime) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT timestamp, service, severity_number, severity_text, body, span_id, attributes "
        "FROM logs WHERE project_id = {p:UInt64} AND trace_id = {t:String} "
        "AND timestamp >= {lo:DateTime64(6)} AND timestamp <= {hi:DateTime64(6)} "
        f"ORDER BY timestamp LIMIT {MAX_LOGS}",
        {"p": project_id, "t": trace_id, "lo": start - AROUND, "hi": end + AROUND})


def trace_error_events(store: TelemetryStore, project_id: int, trace_id: str,
                       start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT event_id, issue_id, timestamp, level, title, culprit, exception_type, "
        "exception_value, transaction FROM events WHERE project_id = {p:UInt64} "
        "AND trace_id = {t:String} AND timestamp >= {lo:DateTime64(6)} "
        "AND timestamp <= {hi:DateTime64(6)} ORDER BY timestamp LIMIT 200",
        {"p": project_id, "t": trace_id, "lo": start - AROUND, "hi": end + AROUND})


def severity_name(number: int, text: str = "") -> str:
    if number <= 0:
        return (text or "unset").lower()
    return ("trace", "debug", "info", "warn", "error", "fatal")[min((number - 1) // 4, 5)]
