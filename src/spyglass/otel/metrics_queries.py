"""Queries of the metrics explorer: the metric catalogue, and a query definition → series.

A :class:`MetricQuery` names a metric, an aggregation, attribute filters and group-by keys;
it is what dashboards store (as JSON). :func:`run` turns it into one series per group over a
time range, in fixed steps.

The store returns the raw points of the matching series (only the columns the metric's type
needs, ordered by series and time); the arithmetic is done here, identically for DuckDB and
ClickHouse:

- **rate** / **increase** of a sum: per series, the increase between consecutive points. A
  cumulative point whose value dropped, or whose ``start_time`` changed, starts a new
  accumulation (a counter reset): its whole value is the increase. A delta point is its own
  increase. Increases are added up per step and group; rate divides by the step in seconds.
  Histograms and summaries have the same two aggregations over their ``count``.
- **sum**, **avg**, **min**, **max**, **last** of gauges and sums: per series and step, the last
  point (a delta sum: the points added up) is summed over the group's series (``sum``); ``avg``,
  ``min``, ``max`` are over all the group's points in the step; ``last`` averages each series'
  latest point.
- **p50/p90/p95/p99** of histograms: per series, the bucket counts of each point (cumulative
  points differenced first, with the same reset rule), merged over the group's series per step by
  bucket upper bound, then interpolated linearly inside the bucket holding the rank (as
  Prometheus' ``histogram_quantile``: the first bucket starts at 0, a rank in the overflow bucket
  gives the highest finite bound). Exponential histograms are first brought to the smallest scale
  in the range (bucket index ``i`` at scale ``s`` is ``i >> (s - target)`` at the target scale,
  which is exact), so points of different scales merge. Summaries give the quantile they carry,
  averaged over the group's series.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from spyglass.kernel.telemetry import TelemetryStore

EPOCH = dt.datetime(1970, 1, 1)
PERCENTILES = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
VALUE_AGGS = ["sum", "avg", "min", "max", "last"]
COUNTER_AGGS = ["rate", "increase"]
AGGREGATIONS = COUNTER_AGGS + VALUE_AGGS + list(PERCENTILES)
MAX_POINTS = 500_000
#: Ranges longer than this read hourly rollups where they exist.
ROLLUP_AFTER_S = 2 * 86400
MAX_SERIES_OUT = 50
MAX_FILTERS = 20
STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
         86400]
_TERM = re.compile(r"^([A-Za-z0-9_.\-@/:]+?)(!=|=)(.*)$", re.DOTALL)
_KEY = re.compile(r"^[A-Za-z0-9_.\-@/:]{1,200}$")


class QueryError(ValueError):
    """A query definition that cannot be run (unknown metric, wrong aggregation ...)."""


@dataclass
class Filter:
    key: str
    value: str
    negate: bool = False

    def text(self) -> str:
        return f"{self.key}{'!=' if self.negate else '='}{self.value}"

    @classmethod
    def parse(cls, text: str) -> Filter | None:
        m = _TERM.match(text.strip())
        if not m:
            return None
        return cls(m.group(1), m.group(3), m.group(2) == "!=")


@dataclass
class MetricQuery:
    metric: str
    aggregation: str = "auto"
    filters: list[Filter] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "aggregation": self.aggregation,
                "filters": [f.text() for f in self.filters], "group_by": list(self.group_by)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricQuery:
        if not isinstance(data, dict) or not isinstance(data.get("metric"), str):
            raise QueryError("a query needs a metric name")
        filters = []
        for text in data.get("filters") or []:
            f = Filter.parse(str(text))
            if f is None:
                raise QueryError(f"a filter is key=value or key!=value, not {text!r}")
            filters.append(f)
        group_by = [str(k).strip() for k in data.get("group_by") or [] if str(k).strip()]
        for key in group_by:
            if not _KEY.match(key):
                raise QueryError(f"not an attribute key: {key!r}")
        agg = str(data.get("aggregation") or "auto")
        if agg != "auto" and agg not in AGGREGATIONS:
            raise QueryError(f"aggregation is one of auto, {', '.join(AGGREGATIONS)}")
        return cls(data["metric"][:500], agg, filters[:MAX_FILTERS], group_by[:10])

    @classmethod
    def from_text(cls, metric: str, aggregation: str = "auto", filters: str = "",
                  group_by: str = "") -> MetricQuery:
        """From the explorer's inputs: filters space-separated, group-by keys comma-separated."""
        return cls.from_json({
            "metric": metric, "aggregation": aggregation,
            "filters": [p for p in filters.split() if p],
            "group_by": [k for k in re.split(r"[,\s]+", group_by) if k]})

    def describe(self, agg: str) -> str:
        text = f"{agg}({self.metric})"
        if self.filters:
            text += "{" + ", ".join(f.text() for f in self.filters) + "}"
        if self.group_by:
            text += " by " + ", ".join(self.group_by)
        return text


@dataclass
class MetricInfo:
    name: str
    type: str
    unit: str
    description: str
    temporality: int
    monotonic: bool
    points: int = 0
    series: int = 0
    last_seen: dt.datetime | None = None

    @property
    def aggregations(self) -> list[str]:
        if self.type in ("histogram", "exponential_histogram"):
            return [*PERCENTILES, "avg", "rate", "increase"]
        if self.type == "summary":
            return [*PERCENTILES, "avg", "rate", "increase"]
        if self.type == "sum":
            return (["rate", "increase", *VALUE_AGGS] if self.monotonic
                    else [*VALUE_AGGS, "rate", "increase"])
        return list(VALUE_AGGS)

    @property
    def default_aggregation(self) -> str:
        return self.aggregations[0] if self.type != "histogram" else "p95"

    @property
    def kind(self) -> str:
        """What the OpenTelemetry API calls the instrument, roughly."""
        if self.type == "sum":
            return ("counter" if self.monotonic else "up-down counter") + (
                " · delta" if self.temporality == 1 else " · cumulative")
        if self.type in ("histogram", "exponential_histogram"):
            return self.type.replace("_", " ") + (
                " · delta" if self.temporality == 1 else " · cumulative")
        return self.type


@dataclass
class Series:
    label: str
    group: dict[str, str]
    values: list[float | None]

    def stats(self) -> dict[str, float | None]:
        vals = [v for v in self.values if v is not None]
        if not vals:
            return {"last": None, "avg": None, "min": None, "max": None}
        return {"last": vals[-1], "avg": sum(vals) / len(vals), "min": min(vals),
                "max": max(vals)}


@dataclass
class Result:
    query: MetricQuery
    info: MetricInfo | None
    aggregation: str
    since: dt.datetime
    until: dt.datetime
    step: int
    x: list[int]
    series: list[Series]
    points: int = 0
    truncated: bool = False
    more_groups: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"x": self.x, "step": self.step, "aggregation": self.aggregation,
                "unit": self.info.unit if self.info else "",
                "series": [{"label": s.label, "group": s.group,
                            "values": [_round(v) for v in s.values]} for s in self.series]}


def _round(v: float | None) -> float | None:
    if v is None or math.isnan(v) or math.isinf(v):
        return None
    return float(f"{v:.6g}")


# -- the catalogue -----------------------------------------------------------------------------


def list_metrics(store: TelemetryStore, project_id: int, since: dt.datetime,
                 search: str = "") -> list[MetricInfo]:
    """Every metric with points since ``since``: type, unit, description, series count."""
    params: dict[str, Any] = {"p": project_id, "since": since}
    cond = "project_id = {p:UInt64} AND timestamp >= {since:DateTime64(6)}"
    if search:
        params["s"] = search.lower()
        cond += (" AND positionCaseInsensitive(metric, {s:String}) > 0"
                 if store.dialect == "clickhouse" else " AND contains(lower(metric), {s:String})")
    rows = store.rows(
        "SELECT metric, max(type) AS type, max(unit) AS unit, max(description) AS description, "
        "max(temporality) AS temporality, max(monotonic) AS monotonic, count(*) AS points, "
        f"{store.uniq('CAST(series_id AS String)' if store.dialect == 'clickhouse' else 'CAST(series_id AS VARCHAR)')} AS series, "
        f"max(timestamp) AS last_seen FROM metric_points WHERE {cond} "
        "GROUP BY metric ORDER BY metric LIMIT 5000", params)
    return [MetricInfo(r["metric"], r["type"], r["unit"], r["description"],
                       int(r["temporality"]), bool(r["monotonic"]), int(r["points"]),
                       int(r["series"]), r["last_seen"]) for r in rows]


def metric_info(store: TelemetryStore, project_id: int, metric: str) -> MetricInfo | None:
    rows = store.rows(
        "SELECT type, max(unit) AS unit, max(description) AS description, "
        "max(temporality) AS temporality, max(monotonic) AS monotonic, count(*) AS points, "
        "max(timestamp) AS last_seen FROM metric_points WHERE project_id = {p:UInt64} "
        "AND metric = {m:String} GROUP BY type ORDER BY points DESC LIMIT 1",
        {"p": project_id, "m": metric})
    if not rows:
        return None
    r = rows[0]
    return MetricInfo(metric, r["type"], r["unit"], r["description"], int(r["temporality"]),
                      bool(r["monotonic"]), int(r["points"]), 0, r["last_seen"])


def attribute_values(store: TelemetryStore, project_id: int, metric: str, since: dt.datetime,
                     ) -> dict[str, list[str]]:
    """The attribute keys of a metric's series (and ``service``) with their commonest values."""
    any_ = "any" if store.dialect == "clickhouse" else "any_value"
    rows = store.rows(
        f"SELECT series_id, {any_}(service) AS service, {any_}(attributes) AS attributes "
        "FROM metric_points WHERE project_id = {p:UInt64} AND metric = {m:String} "
        "AND timestamp >= {since:DateTime64(6)} GROUP BY series_id LIMIT 5000",
        {"p": project_id, "m": metric, "since": since})
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        counts["service"][r["service"]] += 1
        for k, v in dict(r["attributes"]).items():
            counts[k][v] += 1
    return {k: [v for v, _ in sorted(vals.items(), key=lambda kv: (-kv[1], kv[0]))[:30]]
            for k, vals in sorted(counts.items())}


# -- running a query ---------------------------------------------------------------------------


def pick_step(seconds: float, points: int = 120, at_least: float = 0) -> int:
    want = max(seconds / points, at_least)
    return next((s for s in STEPS if s >= want), STEPS[-1])


def _columns(info: MetricInfo) -> str:
    common = "series_id, timestamp, start_time, temporality"
    if info.type == "histogram":
        return common + ", count, sum, bounds, bucket_counts"
    if info.type == "exponential_histogram":
        return (common + ", count, sum, scale, zero_count, zero_threshold, positive_offset, "
                "positive_counts, negative_offset, negative_counts")
    if info.type == "summary":
        return common + ", count, sum, quantiles, quantile_values"
    return common + ", value"


def _where(store: TelemetryStore, q: MetricQuery, params: dict[str, Any]) -> str:
    parts = ["project_id = {p:UInt64}", "metric = {m:String}",
             "timestamp >= {since:DateTime64(6)}", "timestamp < {until:DateTime64(6)}",
             "bitAnd(flags, 1) = 0" if store.dialect == "clickhouse" else "(flags & 1) = 0"]
    for i, f in enumerate(q.filters):
        params[f"fv{i}"] = f.value
        if f.key == "service":
            cond = f"service = {{fv{i}:String}}"
        else:
            params[f"fk{i}"] = f.key
            cond = (f"(coalesce(attributes[{{fk{i}:String}}], '') = {{fv{i}:String}} OR "
                    "resource_id IN (SELECT resource_id FROM resources WHERE project_id = "
                    f"{{p:UInt64}} AND coalesce(attributes[{{fk{i}:String}}], '') = "
                    f"{{fv{i}:String}}))")
        parts.append(f"NOT {cond}" if f.negate else cond)
    return " AND ".join(parts)


def _group_columns(q: MetricQuery, params: dict[str, Any]) -> str:
    out = []
    for i, key in enumerate(q.group_by):
        if key == "service":
            out.append(f"service AS g{i}")
        else:
            params[f"gk{i}"] = key
            out.append(f"coalesce(attributes[{{gk{i}:String}}], '') AS g{i}")
    return "".join(", " + c for c in out)


def _resource_groups(store: TelemetryStore, project_id: int, q: MetricQuery,
                     rows: list[dict[str, Any]]) -> None:
    """Group keys that are resource attributes (not point attributes) are looked up here."""
    from spyglass.otel.api import resource_attributes

    missing = [i for i, k in enumerate(q.group_by)
               if k != "service" and rows and all(r[f"g{i}"] == "" for r in rows)]
    if not missing:
        return
    resources = resource_attributes(store, project_id, {r["resource_id"] for r in rows})
    for r in rows:
        attrs = resources.get(r["resource_id"], {})
        for i in missing:
            r[f"g{i}"] = attrs.get(q.group_by[i], "")


def fetch(store: TelemetryStore, project_id: int, q: MetricQuery, info: MetricInfo,
          since: dt.datetime, until: dt.datetime, rollups_after: dt.datetime | None = None,
          ) -> tuple[list[dict[str, Any]], bool]:
    """The points of the query's series, ordered by series and time.

    With ``rollups_after``, the whole hours from then to the last rolled-up hour are read from
    ``metric_points_1h`` (rows marked ``rolled``), the rest from raw points (see rollups.py).
    """
    params: dict[str, Any] = {"p": project_id, "m": q.metric, "since": since, "until": until}
    cond = _where(store, q, params)
    groups = _group_columns(q, params)
    cols = f"{_columns(info)}, resource_id{groups}"
    sql = (f"SELECT {cols} FROM metric_points WHERE {cond} AND type = {{t:String}} "
           f"ORDER BY series_id, timestamp LIMIT {MAX_POINTS + 1}")
    if rollups_after is not None:
        from spyglass.otel.rollups import ceil_hour, floor_hour, rolled_until

        done = rolled_until(store, project_id)
        params["h0"] = ceil_hour(rollups_after)
        params["h1"] = min(done, floor_hour(until)) if done else params["h0"]
        if params["h1"] > params["h0"]:
            if info.type in ("gauge", "sum"):
                cols += ", min, max, sum, count"
            sql = (f"SELECT * FROM (SELECT {cols}, 0 AS rolled FROM metric_points WHERE {cond} "
                   "AND type = {t:String} AND (timestamp < {h0:DateTime64(6)} OR timestamp >= "
                   "{h1:DateTime64(6)}) UNION ALL "
                   f"SELECT {cols}, 1 AS rolled FROM metric_points_1h WHERE {cond} "
                   "AND type = {t:String} AND timestamp >= {h0:DateTime64(6)} AND timestamp < "
                   "{h1:DateTime64(6)}) AS u "
                   f"ORDER BY series_id, timestamp LIMIT {MAX_POINTS + 1}")
    rows = store.rows(sql, {**params, "t": info.type})
    truncated = len(rows) > MAX_POINTS
    rows = rows[:MAX_POINTS]
    _resource_groups(store, project_id, q, rows)
    return rows, truncated


def run(store: TelemetryStore, project_id: int, q: MetricQuery, since: dt.datetime,
        until: dt.datetime, step: int | None = None, points: int = 120,
        rollups: bool = True) -> Result:
    info = metric_info(store, project_id, q.metric)
    if info is None:
        return Result(q, None, q.aggregation, since, until, step or pick_step(
            (until - since).total_seconds(), points), [], [])
    agg = q.aggregation if q.aggregation in info.aggregations else info.default_aggregation
    seconds = (until - since).total_seconds()
    # One step back as the baseline of the first step's increases.
    lookback = max(step or pick_step(seconds, points), 300)
    # Hourly rollups for long ranges whose steps are whole hours (their rows stand for hours).
    use_rollups = rollups and seconds > ROLLUP_AFTER_S and lookback % 3600 == 0
    rows, truncated = fetch(store, project_id, q, info, since - dt.timedelta(seconds=lookback),
                            until, since if use_rollups else None)
    interval = _typical_interval(rows)
    step = step or pick_step(seconds, points, at_least=interval * 1.5 if interval else 0)
    start = int((since - EPOCH).total_seconds()) // step * step
    end = int((until - EPOCH).total_seconds())
    xs = list(range(start, end, step)) or [start]
    by_series: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_series[r["series_id"]].append(r)
    fetch_since = since - dt.timedelta(seconds=lookback)
    # group key → bucket index → accumulator
    if agg in PERCENTILES and info.type != "summary":
        grouped = _histogram_quantiles(info, by_series, q, xs, step, since, fetch_since,
                                       PERCENTILES[agg])
    elif agg in COUNTER_AGGS or (agg == "avg" and info.type in (
            "histogram", "exponential_histogram", "summary")):
        grouped = _increases(info, by_series, q, xs, step, since, fetch_since, agg, until)
    elif agg in PERCENTILES:
        grouped = _summary_quantiles(by_series, q, xs, step, since, PERCENTILES[agg])
    else:
        grouped = _values(info, by_series, q, xs, step, since, agg)
    series = [Series(_label(q, key), dict(zip(q.group_by, key, strict=True)), values)
              for key, values in grouped.items()]
    series.sort(key=lambda s: -max((v for v in s.values if v is not None), default=-math.inf))
    more = max(0, len(series) - MAX_SERIES_OUT)
    return Result(q, info, agg, since, until, step, xs, series[:MAX_SERIES_OUT], len(rows),
                  truncated, more)


def _label(q: MetricQuery, key: tuple[str, ...]) -> str:
    if not q.group_by:
        return q.metric
    return ", ".join(f"{k}={v or '∅'}" for k, v in zip(q.group_by, key, strict=True))


def _key(q: MetricQuery, row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(row[f"g{i}"] for i in range(len(q.group_by)))


def _typical_interval(rows: list[dict[str, Any]]) -> float:
    diffs = []
    for a, b in itertools.pairwise(rows):
        if a["series_id"] == b["series_id"] and not a.get("rolled") and not b.get("rolled"):
            diffs.append((b["timestamp"] - a["timestamp"]).total_seconds())
        if len(diffs) >= 2000:
            break
    return statistics.median(diffs) if diffs else 0.0


def _bucket(ts: dt.datetime, xs: list[int], step: int) -> int | None:
    i = (int((ts - EPOCH).total_seconds()) - xs[0]) // step
    return i if 0 <= i < len(xs) else None


def _is_reset(prev: dict[str, Any], cur: dict[str, Any], field_: str) -> bool:
    started = cur["start_time"] > EPOCH and prev["start_time"] > EPOCH
    return cur[field_] < prev[field_] or (started and cur["start_time"] != prev["start_time"])


def _increases(info: MetricInfo, by_series: dict[int, list[dict[str, Any]]], q: MetricQuery,
               xs: list[int], step: int, since: dt.datetime, fetch_since: dt.datetime,
               agg: str, until: dt.datetime) -> dict[tuple[str, ...], list[float | None]]:
    """rate/increase of sums (of ``count`` for histograms); avg = sum increase / count increase.

    The rate of a cumulative series in a step is its increases over the time they span (from
    each point's predecessor), so a step that holds fewer points (the last, still running one)
    is not underestimated; a delta series' rate is its sum over the step's elapsed seconds.
    The group's rate is the sum of its series' rates.
    """
    field_ = "value" if info.type in ("sum", "gauge") else "count"
    end = (until - EPOCH).total_seconds()
    inc: dict[tuple[str, ...], list[float | None]] = {}
    den: dict[tuple[str, ...], list[float]] = {}
    for points in by_series.values():
        key = _key(q, points[0])
        acc = inc.setdefault(key, [None] * len(xs))
        counts = den.setdefault(key, [0.0] * len(xs))
        mine: list[float | None] = [None] * len(xs)
        spans = [0.0] * len(xs)
        prev = None
        for cur in points:
            d = _delta(prev, cur, field_, fetch_since)
            ds = _delta(prev, cur, "sum", fetch_since) if agg == "avg" and d is not None else None
            span = (cur["timestamp"] - (prev["timestamp"] if prev else cur["start_time"])
                    ).total_seconds()
            prev = cur
            if d is None or cur["timestamp"] < since:
                continue
            i = _bucket(cur["timestamp"], xs, step)
            if i is None:
                continue
            if agg == "avg":
                acc[i] = (acc[i] or 0.0) + (ds if ds is not None and not math.isnan(ds) else 0.0)
                counts[i] += d
            elif agg == "rate" and cur["temporality"] != 1:
                mine[i] = (mine[i] or 0.0) + d
                spans[i] += max(span, 0.0)
            elif agg == "rate":
                mine[i] = (mine[i] or 0.0) + d
                spans[i] = max(1.0, min(step, end - xs[i]))
            else:
                acc[i] = (acc[i] or 0.0) + d
        if agg == "rate":
            for i, v in enumerate(mine):
                if v is not None:
                    rate = v / (spans[i] if spans[i] > 0 else step)
                    acc[i] = (acc[i] or 0.0) + rate
    out: dict[tuple[str, ...], list[float | None]] = {}
    for key, values in inc.items():
        if agg == "avg":
            out[key] = [None if v is None or not den[key][i] else v / den[key][i]
                        for i, v in enumerate(values)]
        else:
            out[key] = values
    return out


def _delta(prev: dict[str, Any] | None, cur: dict[str, Any], field_: str,
           fetch_since: dt.datetime) -> float | None:
    """The increase a point brings: None for the first point of a series that began earlier."""
    value = float(cur[field_])
    if cur["temporality"] == 1:
        return value
    if prev is None:
        # A series whose accumulation began inside the fetched range counts from zero.
        return value if cur["start_time"] >= fetch_since else None
    if _is_reset(prev, cur, field_):
        return value
    return value - float(prev[field_])


def _values(info: MetricInfo, by_series: dict[int, list[dict[str, Any]]], q: MetricQuery,
            xs: list[int], step: int, since: dt.datetime, agg: str,
            ) -> dict[tuple[str, ...], list[float | None]]:
    delta = info.type == "sum" and info.temporality == 1
    # group → bucket → list of per-series figures (sum/last) or of all points (avg/min/max)
    acc: dict[tuple[str, ...], list[list[Any]]] = {}
    for points in by_series.values():
        key = _key(q, points[0])
        buckets = acc.setdefault(key, [[] for _ in xs])
        per: dict[int, list[float]] = defaultdict(list)
        stats: dict[int, list[tuple[float, float, float, int]]] = defaultdict(list)
        for p in points:
            if p["timestamp"] < since or p["value"] is None or math.isnan(p["value"]):
                continue
            i = _bucket(p["timestamp"], xs, step)
            if i is None:
                continue
            per[i].append(float(p["value"]))
            if p.get("rolled"):  # an hour's min, max, sum and count (none on extra rows)
                if p["count"]:
                    stats[i].append((p["min"], p["max"], p["sum"], int(p["count"])))
            else:
                stats[i].append((p["value"], p["value"], p["value"], 1))
        for i, vals in per.items():
            if agg in ("avg", "min", "max"):
                buckets[i].extend(stats[i])
            elif agg == "sum":
                buckets[i].append(sum(vals) if delta else vals[-1])
            else:  # last
                buckets[i].append(vals[-1])
    out: dict[tuple[str, ...], list[float | None]] = {}
    for key, buckets in acc.items():
        if agg == "sum" or agg == "last":
            out[key] = [None if not b else sum(b) if agg == "sum" else sum(b) / len(b)
                        for b in buckets]
        else:  # (min, max, sum, count) tuples
            out[key] = [None if not b else min(s[0] for s in b) if agg == "min"
                        else max(s[1] for s in b) if agg == "max"
                        else sum(s[2] for s in b) / sum(s[3] for s in b) for b in buckets]
    return out


# -- histograms ----------------------------------------------------------------------------------


def _explicit_buckets(row: dict[str, Any]) -> dict[float, float]:
    bounds = [float(b) for b in row["bounds"] or []]
    counts = [float(c) for c in row["bucket_counts"] or []]
    out: dict[float, float] = {}
    for i, c in enumerate(counts):
        upper = bounds[i] if i < len(bounds) else math.inf
        out[upper] = out.get(upper, 0.0) + c
    return out


def _exponential_buckets(row: dict[str, Any], target: int) -> dict[float, float]:
    """Bucket upper bound → count, at scale ``target`` (≤ the row's scale: exact downscaling)."""
    shift = row["scale"] - target
    base = 2.0 ** (2.0 ** -target)
    out: dict[float, float] = {}
    if row["zero_count"]:
        out[float(row["zero_threshold"] or 0.0)] = float(row["zero_count"])
    for sign, offset, counts in ((1, row["positive_offset"], row["positive_counts"]),
                                 (-1, row["negative_offset"], row["negative_counts"])):
        for k, c in enumerate(counts or []):
            c = float(c)
            if not c:
                continue
            index = (offset + k) >> shift
            try:
                # positive bucket i holds (base^i, base^(i+1)]; negative ones mirror it
                upper = base ** (index + 1) if sign > 0 else -(base ** index)
            except OverflowError:
                upper = math.inf if sign > 0 else -0.0
            out[upper] = out.get(upper, 0.0) + c
    return out


def _histogram_quantiles(info: MetricInfo, by_series: dict[int, list[dict[str, Any]]],
                         q: MetricQuery, xs: list[int], step: int, since: dt.datetime,
                         fetch_since: dt.datetime, level: float,
                         ) -> dict[tuple[str, ...], list[float | None]]:
    exponential = info.type == "exponential_histogram"
    target = min((p["scale"] for ps in by_series.values() for p in ps), default=0) \
        if exponential else 0
    merged: dict[tuple[str, ...], list[dict[float, float]]] = {}
    for points in by_series.values():
        key = _key(q, points[0])
        buckets = merged.setdefault(key, [{} for _ in xs])
        prev_row, prev = None, None
        for row in points:
            cur = _exponential_buckets(row, target) if exponential else _explicit_buckets(row)
            if row["temporality"] == 1:
                diff: dict[float, float] | None = cur
            elif prev_row is None:
                diff = cur if row["start_time"] >= fetch_since else None
            elif _is_reset(prev_row, row, "count") or not set(prev).issubset(cur):
                diff = cur
            else:
                diff = {b: c - prev.get(b, 0.0) for b, c in cur.items()}
            prev_row, prev = row, cur
            if diff is None or row["timestamp"] < since:
                continue
            i = _bucket(row["timestamp"], xs, step)
            if i is None:
                continue
            for b, c in diff.items():  # empty buckets too: they bound their neighbours
                buckets[i][b] = buckets[i].get(b, 0.0) + max(c, 0.0)
    base = 2.0 ** (2.0 ** -target) if exponential else None
    return {key: [quantile(b, level, base) for b in buckets] for key, buckets in merged.items()}


def quantile(buckets: dict[float, float], level: float, base: float | None = None,
             ) -> float | None:
    """The ``level`` quantile of a histogram given as upper bound → count (see the module doc).

    The lowest bucket starts at 0 for explicit bounds and at ``upper / base`` for exponential
    buckets (whose lower bound is known).
    """
    total = sum(buckets.values())
    if total <= 0:
        return None
    uppers = sorted(buckets)
    rank = level * total
    cumulative = 0.0
    for j, upper in enumerate(uppers):
        count = buckets[upper]
        if cumulative + count >= rank and count > 0:
            if math.isinf(upper):
                finite = [u for u in uppers if not math.isinf(u)]
                return finite[-1] if finite else None
            if j > 0:
                lower = uppers[j - 1]
            elif base and upper > 0:
                lower = upper / base
            else:
                lower = 0.0 if upper > 0 else upper
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    finite = [u for u in uppers if not math.isinf(u)]
    return finite[-1] if finite else None


def _summary_quantiles(by_series: dict[int, list[dict[str, Any]]], q: MetricQuery,
                       xs: list[int], step: int, since: dt.datetime, level: float,
                       ) -> dict[tuple[str, ...], list[float | None]]:
    acc: dict[tuple[str, ...], list[list[float]]] = {}
    for points in by_series.values():
        key = _key(q, points[0])
        buckets = acc.setdefault(key, [[] for _ in xs])
        last: dict[int, float] = {}
        for p in points:
            levels = [float(x) for x in p["quantiles"] or []]
            if p["timestamp"] < since or level not in levels:
                continue
            i = _bucket(p["timestamp"], xs, step)
            if i is not None:
                last[i] = float(p["quantile_values"][levels.index(level)])
        for i, v in last.items():
            buckets[i].append(v)
    return {key: [sum(b) / len(b) if b else None for b in buckets] for key, buckets in acc.items()}
