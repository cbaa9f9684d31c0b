"""The read side of Performance: per-transaction throughput, latency, failures, Apdex, users.

Two sources feed it, read as one row shape by :func:`_source` (a ``UNION ALL``), so every
figure is computed by the engine over both at once and percentiles stay exact:

- ``transactions``: one row per Sentry ``transaction`` item (``errors/transactions.py``);
- ``spans`` with ``source = 'otlp'`` and kind server (2) or consumer (5): the entry spans of
  OpenTelemetry services, which do not write ``transactions`` rows. Their release and
  environment come from the resource (``service.version``, ``deployment.environment[.name]``),
  their user from the ``enduser.id`` (or ``user.id``) attribute, and failure is status ERROR.

Definitions (as Sentry's Performance page uses them):

- **TPM**: transactions per minute over the whole selected range;
- **p50/p75/p95**: linear-interpolated percentiles of the duration (exact: both engines
  interpolate the same way below 8192 values per group, ClickHouse samples above that);
- **failure rate**: share whose status is not ``ok``, ``cancelled`` or ``unknown``
  (OpenTelemetry: status ERROR);
- **Apdex** with threshold T: (satisfied (≤ T) + tolerating (≤ 4T) / 2) / total;
- **users affected**: distinct users who had a failed *or* frustrated (> 4T) transaction —
  Sentry's "user misery" counts only the frustrated ones; a failed request hurts as much.

Times are naive UTC, as the telemetry stores return them. Nothing here knows about HTTP.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from spyglass.errors.transactions import NOT_FAILURES
from spyglass.kernel.telemetry import TelemetryStore

#: Range name → (length in seconds, chart bucket width in seconds).
PERIODS: dict[str, tuple[int, int]] = {
    "1h": (3600, 60),
    "24h": (86400, 1800),
    "7d": (7 * 86400, 3 * 3600),
    "14d": (14 * 86400, 6 * 3600),
}
DEFAULT_PERIOD = "24h"
DEFAULT_THRESHOLD_MS = 300
#: OpenTelemetry span kinds that start a unit of work: server and consumer.
ENTRY_KINDS = (2, 5)
MAX_NAMES = 1000
HISTOGRAM_BINS = 20
MAX_TRACE_SPANS = 2000

_FAILED_STATUSES = ", ".join(f"'{s}'" for s in sorted(NOT_FAILURES))

#: Sortable columns of the transactions table: key → (label, default descending).
COLUMNS: dict[str, tuple[str, bool]] = {
    "name": ("Transaction", False),
    "op": ("Operation", False),
    "tpm": ("TPM", True),
    "p50": ("p50", True),
    "p75": ("p75", True),
    "p95": ("p95", True),
    "failure_rate": ("Failure rate", True),
    "apdex": ("Apdex", False),
    "users_affected": ("Users affected", True),
}
DEFAULT_SORT = "-tpm"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Filters:
    """What the page or the API asks for: a project, a window and optional filters."""

    project_id: int
    since: dt.datetime
    until: dt.datetime
    environment: str = ""
    release: str = ""
    threshold_ms: float = DEFAULT_THRESHOLD_MS

    @classmethod
    def for_period(cls, project_id: int, period: str, now: dt.datetime | None = None,
                   **kw: Any) -> Filters:
        length, _ = PERIODS.get(period, PERIODS[DEFAULT_PERIOD])
        until = now or utcnow()
        return cls(project_id, until - dt.timedelta(seconds=length), until, **kw)

    @property
    def minutes(self) -> float:
        return max((self.until - self.since).total_seconds() / 60, 1e-9)


def apdex_threshold(db: Session, project_id: int) -> int:
    """The project's Apdex threshold T in milliseconds (error settings; 300 ms by default,
    as Sentry's)."""
    from spyglass.errors.models import ErrorSettings

    row = db.get(ErrorSettings, project_id)
    value = row.apdex_threshold_ms if row is not None else None
    return int(value) if value and value > 0 else DEFAULT_THRESHOLD_MS


# -- the unified source -----------------------------------------------------------------------


@dataclass
class Resources:
    """Release and environment of the OpenTelemetry resources of a project."""

    release: dict[int, str] = field(default_factory=dict)
    environment: dict[int, str] = field(default_factory=dict)

    def matching(self, environment: str, release: str) -> list[int]:
        ids = set(self.release) | set(self.environment)
        return sorted(i for i in ids
                      if (not environment or self.environment.get(i, "") == environment)
                      and (not release or self.release.get(i, "") == release))


def resources(store: TelemetryStore, project_id: int) -> Resources:
    rows = store.rows(
        "SELECT DISTINCT resource_id, "
        "coalesce(attributes['service.version'], '') AS release, "
        "coalesce(attributes['deployment.environment.name'], '') AS env_new, "
        "coalesce(attributes['deployment.environment'], '') AS env_old "
        "FROM resources WHERE project_id = {p:UInt64}", {"p": project_id})
    out = Resources()
    for r in rows:
        rid = int(r["resource_id"])
        if r["release"]:
            out.release[rid] = r["release"]
        if r["env_new"] or r["env_old"]:
            out.environment[rid] = r["env_new"] or r["env_old"]
    return out


def _source(store: TelemetryStore, f: Filters, res: Resources | None,
            name: str | None = None) -> tuple[str, dict[str, Any]]:
    """A subquery of every transaction in the window, from both sources, in one shape:
    name, op, ts, duration_ms, failed (0/1), status, http_status_code, user_key, trace_id,
    span_id, release, environment, resource_id, origin (sentry | otlp).

    Aliases never reuse a column name of their branch that the WHERE clause reads: ClickHouse
    resolves WHERE names to SELECT aliases first."""
    params: dict[str, Any] = {"p": f.project_id, "since": f.since, "until": f.until}
    tx_where = ["project_id = {p:UInt64}", "timestamp >= {since:DateTime64(6)}",
                "timestamp < {until:DateTime64(6)}"]
    sp_where = ["project_id = {p:UInt64}", "start >= {since:DateTime64(6)}",
                "start < {until:DateTime64(6)}", "source = 'otlp'",
                f"kind IN ({', '.join(str(k) for k in ENTRY_KINDS)})"]
    if f.environment:
        tx_where.append("environment = {env:String}")
        params["env"] = f.environment
    if f.release:
        tx_where.append("release = {rel:String}")
        params["rel"] = f.release
    if f.environment or f.release:
        ids = (res or Resources()).matching(f.environment, f.release)
        # Integers only: nothing user-typed reaches the SQL.
        sp_where.append(f"resource_id IN ({', '.join(str(int(i)) for i in ids) or '0'})"
                        if ids else "1 = 0")
    if name is not None:
        tx_where.append("name = {name:String}")
        sp_where.append("name = {name:String}")
        params["name"] = name
    sentry = (
        "SELECT name, op, timestamp AS ts, duration_ms, "
        f"CASE WHEN status IN ({_FAILED_STATUSES}) THEN 0 ELSE 1 END AS failed, "
        "status, http_status_code, user_key, trace_id, span_id, release, environment, "
        "CAST(0 AS UInt64) AS resource_id, 'sentry' AS origin "
        f"FROM transactions WHERE {' AND '.join(tx_where)}"
    )
    otlp = (
        "SELECT name, CASE WHEN kind = 5 THEN 'queue.process' WHEN http_method != '' "
        "THEN 'http.server' ELSE 'rpc.server' END AS op, start AS ts, "
        "duration_ns / 1000000.0 AS duration_ms, "
        "CASE WHEN status_code = 2 THEN 1 ELSE 0 END AS failed, "
        "CASE WHEN status_code = 2 THEN 'internal_error' ELSE 'ok' END AS status, "
        "http_status_code, "
        "coalesce(nullif(attributes['enduser.id'], ''), attributes['user.id'], '') AS user_key, "
        "trace_id, span_id, '' AS release, '' AS environment, resource_id, 'otlp' AS origin "
        f"FROM spans WHERE {' AND '.join(sp_where)}"
    )
    return f"({sentry} UNION ALL {otlp})", params


def _aggregates(store: TelemetryStore) -> str:
    t, t4 = "{t:Float64}", "{t4:Float64}"
    return (
        "count(*) AS n, sum(failed) AS failures, min(duration_ms) AS min_ms, "
        f"{store.quantile('duration_ms', 0.5)} AS p50, "
        f"{store.quantile('duration_ms', 0.75)} AS p75, "
        f"{store.quantile('duration_ms', 0.95)} AS p95, "
        f"{store.quantile('duration_ms', 0.99)} AS p99, "
        f"sum(CASE WHEN duration_ms <= {t} THEN 1 ELSE 0 END) AS satisfied, "
        f"sum(CASE WHEN duration_ms > {t} AND duration_ms <= {t4} THEN 1 ELSE 0 END) AS tolerating, "
        f"{store.uniq('user_key')} AS users, "
        "count(DISTINCT CASE WHEN user_key != '' AND (failed = 1 OR "
        f"duration_ms > {t4}) THEN user_key END) AS users_affected"
    )


def _threshold(f: Filters) -> dict[str, Any]:
    return {"t": float(f.threshold_ms), "t4": 4.0 * float(f.threshold_ms)}


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


# -- the transactions table -------------------------------------------------------------------


@dataclass
class Figures:
    """The figures of one transaction name (or of the whole project)."""

    name: str
    op: str
    count: int
    failures: int
    p50: float | None
    p75: float | None
    p95: float | None
    p99: float | None
    min_ms: float | None
    satisfied: int
    tolerating: int
    users: int
    users_affected: int
    minutes: float
    threshold_ms: float

    @property
    def tpm(self) -> float:
        return self.count / self.minutes

    @property
    def failure_rate(self) -> float:
        return self.failures / self.count if self.count else 0.0

    @property
    def frustrated(self) -> int:
        return self.count - self.satisfied - self.tolerating

    @property
    def apdex(self) -> float | None:
        if not self.count:
            return None
        return (self.satisfied + self.tolerating / 2) / self.count

    def sort_value(self, key: str) -> Any:
        value = getattr(self, key)
        return value.lower() if isinstance(value, str) else value

    def as_dict(self) -> dict[str, Any]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "name": self.name, "op": self.op, "count": self.count,
            "tpm": round(self.tpm, 6), "p50_ms": ms(self.p50), "p75_ms": ms(self.p75),
            "p95_ms": ms(self.p95), "p99_ms": ms(self.p99), "failures": self.failures,
            "failure_rate": round(self.failure_rate, 6),
            "apdex": None if self.apdex is None else round(self.apdex, 4),
            "satisfied": self.satisfied, "tolerating": self.tolerating,
            "frustrated": self.frustrated, "users": self.users,
            "users_affected": self.users_affected,
        }


def _figures(row: dict[str, Any], f: Filters, name: str = "", op: str = "") -> Figures:
    return Figures(
        name=row.get("name", name) or name, op=row.get("op", op) or op,
        count=int(row["n"] or 0), failures=int(row["failures"] or 0),
        p50=_num(row["p50"]), p75=_num(row["p75"]), p95=_num(row["p95"]), p99=_num(row["p99"]),
        min_ms=_num(row["min_ms"]) if row["n"] else None, satisfied=int(row["satisfied"] or 0), tolerating=int(row["tolerating"] or 0),
        users=int(row["users"] or 0), users_affected=int(row["users_affected"] or 0),
        minutes=f.minutes, threshold_ms=f.threshold_ms,
    )


def parse_sort(sort: str | None) -> tuple[str, bool]:
    """``-p95`` → ('p95', descending); unknown columns fall back to the default."""
    sort = sort or DEFAULT_SORT
    key, desc = (sort[1:], True) if sort.startswith("-") else (sort, False)
    if key not in COLUMNS:
        return parse_sort(DEFAULT_SORT)
    return key, desc


def transactions(store: TelemetryStore, f: Filters, sort: str = DEFAULT_SORT,
                 res: Resources | None = None) -> list[Figures]:
    """One row per transaction name, sorted by ``sort`` (``-`` for descending)."""
    if res is None and (f.environment or f.release):
        res = resources(store, f.project_id)
    source, params = _source(store, f, res)
    rows = store.rows(
        f"SELECT name, max(op) AS op, {_aggregates(store)} FROM {source} AS tx "
        f"GROUP BY name ORDER BY n DESC, name LIMIT {MAX_NAMES}",
        {**params, **_threshold(f)},
    )
    out = [_figures(r, f) for r in rows]
    key, desc = parse_sort(sort)
    present = [x for x in out if x.sort_value(key) is not None]
    missing = [x for x in out if x.sort_value(key) is None]
    present.sort(key=lambda x: x.name)  # ties keep name order, whichever way the sort goes
    present.sort(key=lambda x: x.sort_value(key), reverse=desc)
    return present + missing


def totals(store: TelemetryStore, f: Filters, res: Resources | None = None,
           name: str | None = None) -> Figures:
    """The figures of every transaction together (or of one name)."""
    if res is None and (f.environment or f.release):
        res = resources(store, f.project_id)
    source, params = _source(store, f, res, name)
    [row] = store.rows(f"SELECT max(op) AS op, {_aggregates(store)} FROM {source} AS tx",
                       {**params, **_threshold(f)})
    return _figures(row, f, name=name or "", op=row.get("op") or "")


@dataclass
class Series:
    """Per-bucket throughput and duration percentiles, for the charts (epoch seconds)."""

    x: list[int]
    bucket_seconds: int
    count: list[int]
    tpm: list[float]
    failures: list[int]
    p50: list[float | None]
    p75: list[float | None]
    p95: list[float | None]

    def as_json(self) -> dict[str, Any]:
        per_minute = self.bucket_seconds / 60
        return {"x": self.x, "bucket_seconds": self.bucket_seconds, "tpm": self.tpm,
                "failed_tpm": [round(n / per_minute, 4) for n in self.failures],
                "count": self.count, "failures": self.failures,
                "p50": self.p50, "p75": self.p75, "p95": self.p95}


def series(store: TelemetryStore, f: Filters, bucket_seconds: int,
           res: Resources | None = None, name: str | None = None) -> Series:
    """Throughput and p50/p75/p95 per bucket over the window (empty buckets are 0 / null)."""
    if res is None and (f.environment or f.release):
        res = resources(store, f.project_id)
    width = int(bucket_seconds)
    first = int(f.since.replace(tzinfo=dt.UTC).timestamp()) // width * width
    last = int(f.until.replace(tzinfo=dt.UTC).timestamp()) // width * width
    xs = list(range(first, last + 1, width))
    index = {x: i for i, x in enumerate(xs)}
    n = len(xs)
    out = Series(xs, width, [0] * n, [0.0] * n, [0] * n, [None] * n, [None] * n, [None] * n)
    source, params = _source(store, f, res, name)
    rows = store.rows(
        f"SELECT {store.time_bucket('ts', width)} AS b, count(*) AS n, sum(failed) AS failures, "
        f"{store.quantile('duration_ms', 0.5)} AS p50, "
        f"{store.quantile('duration_ms', 0.75)} AS p75, "
        f"{store.quantile('duration_ms', 0.95)} AS p95 "
        f"FROM {source} AS tx GROUP BY b", params)
    for r in rows:
        i = index.get(int(r["b"]))
        if i is None:
            continue
        out.count[i] = int(r["n"])
        out.failures[i] = int(r["failures"] or 0)
        out.tpm[i] = round(int(r["n"]) / (width / 60), 4)
        for key in ("p50", "p75", "p95"):
            value = _num(r[key])
            getattr(out, key)[i] = None if value is None else round(value, 3)
    return out


def has_transactions(store: TelemetryStore, project_id: int) -> bool:
    """Whether the project ever received a transaction or an OpenTelemetry entry span."""
    if store.rows("SELECT 1 AS x FROM transactions WHERE project_id = {p:UInt64} LIMIT 1",
                  {"p": project_id}):
        return True
    return bool(store.rows(
        "SELECT 1 AS x FROM spans WHERE project_id = {p:UInt64} AND source = 'otlp' "
        f"AND kind IN ({', '.join(str(k) for k in ENTRY_KINDS)}) LIMIT 1", {"p": project_id}))


def facets(store: TelemetryStore, project_id: int, since: dt.datetime,
           res: Resources | None = None) -> dict[str, list[str]]:
    """Environments and releases seen since ``since`` (for the filter menus)."""
    out: dict[str, set[str]] = {"environment": set(), "release": set()}
    for column, values in out.items():
        for r in store.rows(
                f"SELECT DISTINCT {column} AS v FROM transactions WHERE project_id = {{p:UInt64}} "
                f"AND timestamp >= {{since:DateTime64(6)}} AND {column} != '' LIMIT 200",
                {"p": project_id, "since": since}):
            values.add(r["v"])
    if res is not None:
        out["environment"].update(res.environment.values())
        out["release"].update(res.release.values())
    return {k: sorted(v) for k, v in out.items()}


# -- one transaction ---------------------------------------------------------------------------


@dataclass
class Sample:
    """One stored transaction: a line of the slowest and most recent lists."""

    trace_id: str
    span_id: str
    timestamp: dt.datetime
    duration_ms: float
    status: str
    http_status_code: int
    user_key: str
    release: str
    environment: str
    source: str

    @property
    def failed(self) -> bool:
        return self.status not in NOT_FAILURES


def samples(store: TelemetryStore, f: Filters, name: str, order: str, limit: int = 10,
            res: Resources | None = None) -> list[Sample]:
    """The slowest (``order='slowest'``) or most recent transactions of ``name``."""
    source, params = _source(store, f, res, name)
    by = "duration_ms DESC, ts DESC" if order == "slowest" else "ts DESC, duration_ms DESC"
    rows = store.rows(
        "SELECT trace_id, span_id, ts, duration_ms, status, http_status_code, user_key, "
        f"release, environment, resource_id, origin FROM {source} AS tx "
        f"ORDER BY {by} LIMIT {int(limit)}", params)
    res = res or Resources()
    out = []
    for r in rows:
        rid = int(r["resource_id"] or 0)
        out.append(Sample(
            trace_id=r["trace_id"], span_id=r["span_id"], timestamp=r["ts"],
            duration_ms=float(r["duration_ms"]), status=r["status"] or "",
            http_status_code=int(r["http_status_code"] or 0), user_key=r["user_key"] or "",
            release=r["release"] or res.release.get(rid, ""),
            environment=r["environment"] or res.environment.get(rid, ""),
            source=r["origin"]))
    return out


@dataclass
class Histogram:
    """Durations in equal-width bins from ``start_ms``; the last bin also holds everything
    slower."""

    start_ms: float
    width_ms: float
    counts: list[int]

    @property
    def peak(self) -> int:
        return max(self.counts, default=0)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def bins(self) -> list[tuple[float, float, int]]:
        return [(self.start_ms + i * self.width_ms, self.start_ms + (i + 1) * self.width_ms, c)
                for i, c in enumerate(self.counts)]


def nice_step(value: float) -> float:
    """The smallest 1/2/2.5/5 × 10^k that is ≥ ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def histogram(store: TelemetryStore, f: Filters, name: str, lower_ms: float | None,
              upper_ms: float | None, res: Resources | None = None,
              bins: int = HISTOGRAM_BINS) -> Histogram:
    """Duration histogram of ``name`` from ``lower_ms`` (the fastest) up to ``upper_ms`` (use
    the p99: outliers fold into the last bin instead of squeezing every other bar)."""
    lower, upper = max(lower_ms or 0.0, 0.0), max(upper_ms or 0.0, 0.0)
    width = nice_step(max(upper - lower, 0.01) / bins)
    start = math.floor(lower / width) * width
    if start + width * bins <= upper:  # rounding the start down may push the p99 off the end
        width = nice_step(width * 1.01)
        start = math.floor(lower / width) * width
    source, params = _source(store, f, res, name)
    rows = store.rows(
        "SELECT least(CAST(floor((duration_ms - {s:Float64}) / {w:Float64}) AS Int64), "
        f"{{last:Int64}}) AS bin, count(*) AS n FROM {source} AS tx GROUP BY bin",
        {**params, "s": start, "w": width, "last": bins - 1})
    counts = [0] * bins
    for r in rows:
        counts[max(0, min(int(r["bin"]), bins - 1))] += int(r["n"])
    return Histogram(start, width, counts)


def status_breakdown(store: TelemetryStore, f: Filters, name: str,
                     res: Resources | None = None) -> list[tuple[str, int]]:
    source, params = _source(store, f, res, name)
    rows = store.rows(f"SELECT status, count(*) AS n FROM {source} AS tx GROUP BY status "
                      "ORDER BY n DESC, status", params)
    return [(r["status"] or "unknown", int(r["n"])) for r in rows]


@dataclass
class SpanLine:
    """One span of a transaction's waterfall: offsets in ms from the transaction's start."""

    span_id: str
    parent_span_id: str
    depth: int
    op: str
    description: str
    offset_ms: float
    duration_ms: float
    failed: bool


def _span_op(row: dict[str, Any]) -> str:
    attributes = row.get("attributes") or {}
    if isinstance(attributes, list):  # DuckDB may hand maps back as key/value pairs
        attributes = dict(attributes)
    op = attributes.get("sentry.op") or ""
    if op:
        return str(op)
    if row["db_system"]:
        return f"db.{row['db_system']}" if row["kind"] == 3 else "db"
    if row["http_method"]:
        return "http.client" if row["kind"] == 3 else "http.server"
    return {2: "server", 3: "client", 4: "producer", 5: "consumer"}.get(int(row["kind"]), "span")


def span_tree(store: TelemetryStore, project_id: int, trace_id: str, span_id: str
              ) -> list[SpanLine]:
    """The spans of one transaction (its root span and its descendants), in tree order."""
    rows = store.rows(
        "SELECT span_id, parent_span_id, name, kind, start, duration_ns, status_code, "
        "http_method, db_system, attributes FROM spans WHERE project_id = {p:UInt64} "
        f"AND trace_id = {{t:String}} ORDER BY start LIMIT {MAX_TRACE_SPANS}",
        {"p": project_id, "t": trace_id})
    by_id: dict[str, dict[str, Any]] = {}
    children: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["span_id"] in by_id:  # a retried export may have stored a span twice
            continue
        by_id[r["span_id"]] = r
        children.setdefault(r["parent_span_id"], []).append(r)
    root = by_id.get(span_id)
    if root is None:
        return []
    out: list[SpanLine] = []
    stack: list[tuple[dict[str, Any], int]] = [(root, 0)]
    while stack:
        row, depth = stack.pop()
        out.append(SpanLine(
            span_id=row["span_id"], parent_span_id=row["parent_span_id"], depth=depth,
            op=_span_op(row), description=row["name"] or "",
            offset_ms=(row["start"] - root["start"]).total_seconds() * 1000,
            duration_ms=int(row["duration_ns"]) / 1e6, failed=int(row["status_code"]) == 2))
        for child in reversed(children.get(row["span_id"], [])):
            if len(out) + len(stack) < MAX_TRACE_SPANS:
                stack.append((child, depth + 1))
    return out


def op_breakdown(spans: list[SpanLine]) -> list[tuple[str, float]]:
    """Time per span operation in one transaction (the root's own op excluded), longest first."""
    total: dict[str, float] = {}
    for s in spans[1:]:
        total[s.op] = total.get(s.op, 0.0) + s.duration_ms
    return sorted(total.items(), key=lambda kv: -kv[1])


@dataclass
class RelatedIssue:
    issue_id: int
    events: int
    users: int
    last_seen: dt.datetime


def related_issues(store: TelemetryStore, f: Filters, name: str, limit: int = 10
                   ) -> list[RelatedIssue]:
    """Issues whose events carry this transaction name, within the window, most events first."""
    params: dict[str, Any] = {"p": f.project_id, "since": f.since, "until": f.until, "name": name}
    where = ["project_id = {p:UInt64}", "timestamp >= {since:DateTime64(6)}",
             "timestamp < {until:DateTime64(6)}", "transaction = {name:String}"]
    if f.environment:
        where.append("environment = {env:String}")
        params["env"] = f.environment
    if f.release:
        where.append("release = {rel:String}")
        params["rel"] = f.release
    rows = store.rows(
        f"SELECT issue_id, count(*) AS n, {store.uniq('user_key')} AS users, "
        f"max(timestamp) AS last FROM events WHERE {' AND '.join(where)} "
        f"GROUP BY issue_id ORDER BY n DESC, issue_id LIMIT {int(limit)}", params)
    return [RelatedIssue(int(r["issue_id"]), int(r["n"]), int(r["users"] or 0), r["last"])
            for r in rows]
