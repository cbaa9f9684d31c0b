"""Queries of the logs explorer: search, volume histogram, paging, tail and context.

Everything here is plain SQL over the ``logs`` table with typed placeholders, written once for
DuckDB and ClickHouse; the few spellings that differ (case-insensitive substring search) look
at ``store.dialect``.

A search is a :class:`LogQuery`: free text (every word or quoted phrase must occur in the body,
case-insensitively), ``key=value`` / ``key!=value`` terms (log attributes, resource attributes,
or the columns ``service``, ``level``, ``trace_id``, ``span_id``), severities and a time range.

Paging is keyset paging on ``timestamp`` (newest first): a :class:`Cursor` holds the last
timestamp shown and how many lines with exactly that timestamp were shown already, so a page
never repeats or skips a line even when many lines share one microsecond.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from spyglass.kernel.telemetry import TelemetryStore

#: Severity classes of OTLP SeverityNumber: name → (lowest, highest) number.
LEVELS: dict[str, tuple[int, int]] = {
    "trace": (1, 4), "debug": (5, 8), "info": (9, 12),
    "warn": (13, 16), "error": (17, 20), "fatal": (21, 24),
}
LEVEL_ALIASES = {"warning": "warn", "err": "error", "critical": "fatal", "crit": "fatal",
                 "information": "info", "dbg": "debug"}
#: Histogram stack order, bottom to top ("unset" is severity 0).
STACK = ["fatal", "error", "warn", "info", "debug", "trace", "unset"]
PAGE = 100
MAX_PAGE = 1000
MAX_TERMS = 20
COLUMNS = ("timestamp, observed, service, severity_number, severity_text, body, trace_id, "
           "span_id, event_name, scope_name, attributes, resource_id, source")
_TERM = re.compile(r"^([A-Za-z0-9_.\-@/:]+?)(!=|=)(.*)$", re.DOTALL)
_HEX = re.compile(r"^[0-9a-fA-F]{1,32}$")
EPOCH = dt.datetime(1970, 1, 1)


def level_of(number: int) -> str:
    for name, (lo, hi) in LEVELS.items():
        if lo <= number <= hi:
            return name
    return "unset"


def level_name(text: str) -> str | None:
    text = text.strip().lower()
    text = LEVEL_ALIASES.get(text, text)
    return text if text in LEVELS or text == "unset" else None


@dataclass
class Term:
    key: str
    value: str
    negate: bool = False


@dataclass
class LogQuery:
    project_id: int
    since: dt.datetime
    until: dt.datetime
    #: Words and phrases that must all occur in the body (case-insensitive).
    text: list[str] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)
    #: Severity classes to keep (empty: all).
    levels: list[str] = field(default_factory=list)
    #: Lowest severity class to keep ("warn": warn, error and fatal).
    min_level: str = ""
    services: list[str] = field(default_factory=list)
    trace_id: str = ""

    @classmethod
    def parse(cls, project_id: int, since: dt.datetime, until: dt.datetime, query: str = "",
              **kw: Any) -> LogQuery:
        """``query`` is free text plus ``key=value`` terms: ``timeout service=api -x`` ..."""
        q = cls(project_id, since, until, **kw)
        q.add_search(query)
        return q

    def add_search(self, query: str) -> None:
        try:
            parts = shlex.split(query)
        except ValueError:  # an unbalanced quote: take the words as they are
            parts = query.split()
        for part in parts[: MAX_TERMS * 2]:
            match = _TERM.match(part)
            if match and len(self.terms) < MAX_TERMS:
                key, op, value = match.groups()
                self.add_term(key, value, op == "!=")
            elif part.strip() and len(self.text) < MAX_TERMS:
                self.text.append(part.strip())

    def add_term(self, key: str, value: str, negate: bool = False) -> None:
        key = key.strip()
        if key in ("level", "severity") and not negate:
            name = level_name(value)
            if name and name not in self.levels:
                self.levels.append(name)
            return
        if key == "trace_id" and not negate and _HEX.match(value):
            self.trace_id = value.lower()
            return
        self.terms.append(Term(key, value, negate))

    def search_text(self) -> str:
        """The query back as text, for the search box."""
        out = [shlex.quote(t) if (" " in t or not t) else t for t in self.text]
        for t in self.terms:
            value = shlex.quote(t.value) if (not t.value or re.search(r"\s|['\"]", t.value)) \
                else t.value
            out.append(f"{t.key}{'!=' if t.negate else '='}{value}")
        return " ".join(out)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last timestamp shown and how many lines at it were shown."""

    timestamp: dt.datetime
    skip: int

    def encode(self) -> str:
        us = int((self.timestamp - EPOCH).total_seconds() * 1e6)
        return base64.urlsafe_b64encode(f"{us}:{self.skip}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            us, skip = raw.split(":")
            return cls(EPOCH + dt.timedelta(microseconds=int(us)), max(0, min(int(skip), 10**6)))
        except (ValueError, UnicodeDecodeError):
            return None


# -- SQL --------------------------------------------------------------------------------------


def where(store: TelemetryStore, q: LogQuery, params: dict[str, Any],
          with_levels: bool = True) -> str:
    """The WHERE clause of a search, adding its values to ``params``."""
    params.update(p=q.project_id, since=q.since, until=q.until)
    parts = ["project_id = {p:UInt64}", "timestamp >= {since:DateTime64(6)}",
             "timestamp < {until:DateTime64(6)}"]
    for i, text in enumerate(q.text):
        params[f"t{i}"] = text
        if store.dialect == "clickhouse":
            parts.append(f"positionCaseInsensitiveUTF8(body, {{t{i}:String}}) > 0")
        else:
            parts.append(f"contains(lower(body), lower({{t{i}:String}}))")
    if with_levels:
        ranges = level_ranges(q)
        if ranges is not None:
            parts.append("(" + " OR ".join(ranges) + ")" if ranges else "1 = 0")
    if q.services:
        names = []
        for i, s in enumerate(q.services):
            params[f"s{i}"] = s
            names.append(f"{{s{i}:String}}")
        parts.append(f"service IN ({', '.join(names)})")
    if q.trace_id:
        params["trace"] = q.trace_id
        parts.append("trace_id = {trace:String}" if len(q.trace_id) == 32
                     else "startsWith(trace_id, {trace:String})" if store.dialect == "clickhouse"
                     else "starts_with(trace_id, {trace:String})")
    for i, term in enumerate(q.terms):
        params[f"v{i}"] = term.value
        if term.key in ("service", "trace_id", "span_id", "severity_text", "scope_name",
                        "event_name", "source"):
            cond = f"{term.key} = {{v{i}:String}}"
        else:
            params[f"k{i}"] = term.key
            cond = (f"(coalesce(attributes[{{k{i}:String}}], '') = {{v{i}:String}} OR resource_id IN "
                    f"(SELECT resource_id FROM resources WHERE project_id = {{p:UInt64}} AND "
                    f"coalesce(attributes[{{k{i}:String}}], '') = {{v{i}:String}}))")
        parts.append(f"NOT {cond}" if term.negate else cond)
    return " AND ".join(parts)


def level_ranges(q: LogQuery) -> list[str] | None:
    """SQL conditions on severity_number for the chosen levels; None when all are kept."""
    chosen = list(q.levels)
    if q.min_level and level_name(q.min_level) in LEVELS:
        floor = LEVELS[level_name(q.min_level) or "trace"][0]
        above = [n for n, (lo, _) in LEVELS.items() if lo >= floor]
        chosen = [n for n in chosen if n in above] if chosen else above
    if not chosen and not q.levels:
        return None
    out = []
    for name in chosen:
        if name == "unset":
            out.append("severity_number = 0")
        else:
            lo, hi = LEVELS[name]
            out.append(f"severity_number BETWEEN {lo} AND {hi}")
    return out


def page(store: TelemetryStore, q: LogQuery, cursor: Cursor | None = None, limit: int = PAGE,
         ) -> tuple[list[dict[str, Any]], Cursor | None]:
    """One page of matching lines, newest first, and the cursor of the next page (or None)."""
    limit = max(1, min(limit, MAX_PAGE))
    params: dict[str, Any] = {}
    cond = where(store, q, params)
    skip = 0
    if cursor is not None:
        params["cts"] = cursor.timestamp
        cond += " AND timestamp <= {cts:DateTime64(6)}"
        skip = cursor.skip
    rows = store.rows(
        f"SELECT {COLUMNS} FROM logs WHERE {cond} ORDER BY timestamp DESC, observed DESC, "
        f"service, span_id, body LIMIT {limit + 1} OFFSET {skip}", params)
    more = len(rows) > limit
    rows = rows[:limit]
    if not more or not rows:
        return rows, None
    last = rows[-1]["timestamp"]
    same = sum(1 for r in rows if r["timestamp"] == last)
    if cursor is not None and cursor.timestamp == last:
        same += cursor.skip
    return rows, Cursor(last, same)


def newer(store: TelemetryStore, q: LogQuery, after: Cursor, limit: int = 500,
          ) -> tuple[list[dict[str, Any]], Cursor]:
    """Live tail: lines after ``after`` (oldest first), and the cursor to ask from next time.

    ``after.skip`` counts the lines at exactly ``after.timestamp`` already shown.
    """
    params: dict[str, Any] = {"ats": after.timestamp}
    cond = where(store, q, params) + " AND timestamp >= {ats:DateTime64(6)}"
    rows = store.rows(
        f"SELECT {COLUMNS} FROM logs WHERE {cond} ORDER BY timestamp, observed, service, "
        f"span_id, body LIMIT {limit} OFFSET {after.skip}", params)
    if not rows:
        return [], after
    last = rows[-1]["timestamp"]
    same = sum(1 for r in rows if r["timestamp"] == last)
    if last == after.timestamp:
        same += after.skip
    return rows, Cursor(last, same)


def latest_cursor(store: TelemetryStore, q: LogQuery) -> Cursor:
    """Where a tail starts: after the newest matching line (or now, when there is none)."""
    params: dict[str, Any] = {}
    cond = where(store, q, params)
    ts = store.scalar(f"SELECT max(timestamp) FROM logs WHERE {cond}", params)
    if ts is None or ts <= EPOCH:
        return Cursor(q.until, 0)
    params["mts"] = ts
    n = store.scalar(f"SELECT count(*) FROM logs WHERE {cond} AND timestamp = {{mts:DateTime64(6)}}",
                     params)
    return Cursor(ts, int(n or 0))


def histogram(store: TelemetryStore, q: LogQuery, step: int) -> dict[str, Any]:
    """Log volume per ``step`` seconds, by severity class: ``{"x": [...], level: [...]}``."""
    params: dict[str, Any] = {}
    cond = where(store, q, params)
    bucket = store.time_bucket("timestamp", step)
    levels = "multiIf(" if store.dialect == "clickhouse" else "CASE "
    if store.dialect == "clickhouse":
        levels += ", ".join(f"severity_number BETWEEN {lo} AND {hi}, '{n}'"
                            for n, (lo, hi) in LEVELS.items()) + ", 'unset')"
    else:
        levels += " ".join(f"WHEN severity_number BETWEEN {lo} AND {hi} THEN '{n}'"
                           for n, (lo, hi) in LEVELS.items()) + " ELSE 'unset' END"
    rows = store.rows(
        f"SELECT {bucket} AS b, {levels} AS level, count(*) AS n FROM logs WHERE {cond} "
        "GROUP BY b, level", params)
    start = int((q.since - EPOCH).total_seconds()) // step * step
    end = int((q.until - EPOCH).total_seconds())
    xs = list(range(start, end, step)) or [start]
    index = {x: i for i, x in enumerate(xs)}
    out: dict[str, Any] = {"x": xs, "step": step}
    for name in STACK:
        out[name] = [0] * len(xs)
    total = 0
    for r in rows:
        i = index.get(int(r["b"]))
        if i is not None:
            out[r["level"]][i] += int(r["n"])
            total += int(r["n"])
    out["total"] = total
    out["levels"] = [n for n in STACK if any(out[n])]
    return out


def count(store: TelemetryStore, q: LogQuery) -> int:
    params: dict[str, Any] = {}
    return int(store.scalar(f"SELECT count(*) FROM logs WHERE {where(store, q, params)}",
                            params) or 0)


def context(store: TelemetryStore, project_id: int, service: str, at: dt.datetime,
            n: int = 25) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``n`` lines of ``service`` before and the ``n`` lines from ``at`` on (oldest first)."""
    params = {"p": project_id, "s": service, "at": at}
    base = "project_id = {p:UInt64} AND service = {s:String}"
    before = store.rows(
        f"SELECT {COLUMNS} FROM logs WHERE {base} AND timestamp < {{at:DateTime64(6)}} "
        f"ORDER BY timestamp DESC, observed DESC LIMIT {n}", params)
    after = store.rows(
        f"SELECT {COLUMNS} FROM logs WHERE {base} AND timestamp >= {{at:DateTime64(6)}} "
        f"ORDER BY timestamp, observed LIMIT {n + 1}", params)
    return list(reversed(before)), after


def facets(store: TelemetryStore, project_id: int, since: dt.datetime, until: dt.datetime,
           ) -> dict[str, Any]:
    """Services with their line counts in the window, and the most common attribute keys."""
    params = {"p": project_id, "since": since, "until": until}
    window = ("project_id = {p:UInt64} AND timestamp >= {since:DateTime64(6)} "
              "AND timestamp < {until:DateTime64(6)}")
    services = store.rows(f"SELECT service, count(*) AS n FROM logs WHERE {window} "
                          "GROUP BY service ORDER BY n DESC LIMIT 50", params)
    if store.dialect == "clickhouse":
        keys_sql = (f"SELECT k, count(*) AS n FROM (SELECT arrayJoin(mapKeys(attributes)) AS k "
                    f"FROM logs WHERE {window} LIMIT 20000) GROUP BY k ORDER BY n DESC LIMIT 30")
    else:
        keys_sql = (f"SELECT k, count(*) AS n FROM (SELECT unnest(map_keys(attributes)) AS k "
                    f"FROM (SELECT attributes FROM logs WHERE {window} LIMIT 20000)) "
                    "GROUP BY k ORDER BY n DESC LIMIT 30")
    keys = store.rows(keys_sql, params)
    return {"services": [(r["service"], int(r["n"])) for r in services],
            "keys": [r["k"] for r in keys]}
