"""Hourly rollups of metric points (``metric_points_1h``), so a month-long chart reads a few
rows per series and hour instead of every raw point. See docs/metrics.md, "Rollups".

The rollup table has the columns of ``metric_points``, so the queries read either one the same
way. Per project, series and hour it holds *raw points* (copied, marked with
:data:`ROLLUP_FLAG`), chosen so that what the queries compute from them is exactly what they
compute from the raw points, at steps that are whole hours:

- cumulative sums, histograms, exponential histograms and summaries: the hour's last point, and
  both points of every counter reset inside the hour (a point whose value/count dropped, whose
  ``start_time`` changed, or whose bucket layout changed, with its predecessor). Increases
  telescope between the kept points, and every reset is seen by the queries as in raw data;
- delta sums: one row, value = the hour's sum; delta histograms: one row per distinct bounds,
  count/sum/buckets added up, min/max of min/max; delta exponential histograms: one row,
  buckets merged at the hour's smallest scale (exact downscaling). ``start_time`` = the first
  point's, ``timestamp`` = the last point's;
- gauges (and sums): the hour's last value in ``value``, and on that row ``min``/``max``/``sum``/
  ``count`` = the hour's min, max, sum and number of values, so avg/min/max/last stay exact
  (other kept rows of the hour carry ``count`` 0).

A leader job rolls up every complete hour of every project, one project-hour at a time. Each
run also re-rolls the last :data:`REROLL_HOURS` complete hours, so points that arrive up to
that late are reflected; older late points are not (the charts of long ranges miss them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from typing import Any

import pyarrow as pa
import structlog

from spyglass.kernel.telemetry import TelemetryStore, register_table
from spyglass.otel.schema import METRIC_POINTS

log = structlog.get_logger(__name__)

HOUR = dt.timedelta(hours=1)
EPOCH = dt.datetime(1970, 1, 1)
#: Bit of ``flags`` that marks rollup rows (OTLP uses bit 0 only: "no recorded value").
ROLLUP_FLAG = 1 << 30
REROLL_HOURS = 2
INTERVAL_S = 300
#: Hours rolled per project and run: a backfill of a large history spreads over several runs.
MAX_HOURS_PER_RUN = 24 * 14
#: How far back the previous hours' rollups are read as the baseline of reset detection.
BASELINE = dt.timedelta(days=1)

METRIC_POINTS_1H = register_table(dataclasses.replace(METRIC_POINTS, name="metric_points_1h"))
_NAMES = [c.name for c in METRIC_POINTS.columns]


def floor_hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: dt.datetime) -> dt.datetime:
    f = floor_hour(t)
    return f if f == t else f + HOUR


def rolled_until(store: TelemetryStore, project_id: int) -> dt.datetime | None:
    """End of the last hour rolled up for the project (None: nothing rolled up yet)."""
    last = store.scalar("SELECT max(timestamp) FROM metric_points_1h WHERE project_id = "
                        "{p:UInt64}", {"p": project_id})
    if last is None or last <= dt.datetime(1971, 1, 1):  # ClickHouse's max of nothing: epoch
        return None
    return floor_hour(last) + HOUR


def _flag_expr(store: TelemetryStore) -> str:
    return "bitAnd(flags, 1) = 0" if store.dialect == "clickhouse" else "(flags & 1) = 0"


def _raw_hour(store: TelemetryStore, project_id: int, hour: dt.datetime) -> list[dict[str, Any]]:
    return store.rows(
        f"SELECT {', '.join(_NAMES)} FROM metric_points WHERE project_id = {{p:UInt64}} "
        "AND timestamp >= {a:DateTime64(6)} AND timestamp < {b:DateTime64(6)} "
        f"AND {_flag_expr(store)} ORDER BY series_id, timestamp",
        {"p": project_id, "a": hour, "b": hour + HOUR})


def _next_data(store: TelemetryStore, project_id: int, start: dt.datetime,
               end: dt.datetime) -> dt.datetime | None:
    t = store.scalar("SELECT min(timestamp) FROM metric_points WHERE project_id = {p:UInt64} "
                     "AND timestamp >= {a:DateTime64(6)} AND timestamp < {b:DateTime64(6)}",
                     {"p": project_id, "a": start, "b": end})
    return None if t is None or t < start else floor_hour(t)


# -- what one hour of one series becomes -----------------------------------------------------


def _nums(values: list[float]) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def _layout(p: dict[str, Any]) -> Any:
    if p["type"] == "histogram":
        return tuple(p["bounds"] or ())
    if p["type"] == "exponential_histogram":
        return p["scale"]
    return None


def _is_reset(prev: dict[str, Any], cur: dict[str, Any]) -> bool:
    """The queries' reset rule (metrics_queries._is_reset), plus a changed bucket layout."""
    field = "value" if cur["type"] in ("sum", "gauge") else "count"
    started = cur["start_time"] > EPOCH and prev["start_time"] > EPOCH
    return (cur[field] < prev[field] or (started and cur["start_time"] != prev["start_time"])
            or _layout(prev) != _layout(cur))


def _stats(row: dict[str, Any], points: list[dict[str, Any]]) -> dict[str, Any]:
    vals = _nums([p["value"] for p in points])
    row.update(min=min(vals) if vals else math.nan, max=max(vals) if vals else math.nan,
               sum=math.fsum(vals) if vals else math.nan, count=len(vals))
    return row


def _mark(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "flags": int(p["flags"]) | ROLLUP_FLAG, "exemplars": ""}


def _kept(points: list[dict[str, Any]], before: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Cumulative series: the last point, and both sides of every reset."""
    keep = [False] * len(points)
    keep[-1] = True
    if before is None or _is_reset(before, points[0]):
        keep[0] = True
    for i in range(1, len(points)):
        if _is_reset(points[i - 1], points[i]):
            keep[i - 1] = keep[i] = True
    out = [_mark(p) for p, k in zip(points, keep, strict=True) if k]
    if points[-1]["type"] == "sum":
        for row in out:
            row.update(min=math.nan, max=math.nan, sum=math.nan, count=0)
        _stats(out[-1], points)
    return out


def _merge_exponential(points: list[dict[str, Any]], row: dict[str, Any]) -> None:
    target = min(p["scale"] for p in points)
    row["scale"] = target
    row["zero_count"] = sum(int(p["zero_count"]) for p in points)
    row["zero_threshold"] = max(float(p["zero_threshold"] or 0.0) for p in points)
    for side in ("positive", "negative"):
        merged: dict[int, int] = defaultdict(int)
        for p in points:
            shift = p["scale"] - target
            for k, c in enumerate(p[f"{side}_counts"] or []):
                if int(c):
                    merged[(p[f"{side}_offset"] + k) >> shift] += int(c)
        if merged:
            lo, hi = min(merged), max(merged)
            row[f"{side}_offset"] = lo
            row[f"{side}_counts"] = [str(merged.get(i, 0)) for i in range(lo, hi + 1)]
        else:
            row[f"{side}_offset"], row[f"{side}_counts"] = 0, []


def _delta(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kind = points[-1]["type"]
    if kind == "sum":
        row = _mark(points[-1])
        row["start_time"] = points[0]["start_time"]
        row["value"] = math.fsum(_nums([p["value"] for p in points]))
        return [_stats(row, points)]
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        groups[tuple(p["bounds"] or ()) if kind == "histogram" else None].append(p)
    out = []
    for group in groups.values():
        row = _mark(group[-1])
        row["start_time"] = group[0]["start_time"]
        row["count"] = sum(int(p["count"]) for p in group)
        sums, mins, maxs = (_nums([p[k] for p in group]) for k in ("sum", "min", "max"))
        row["sum"] = math.fsum(sums) if sums else math.nan
        row["min"] = min(mins) if mins else math.nan
        row["max"] = max(maxs) if maxs else math.nan
        if kind == "histogram":
            width = max(len(p["bucket_counts"] or []) for p in group)
            counts = [0] * width
            for p in group:
                for i, c in enumerate(p["bucket_counts"] or []):
                    counts[i] += int(c)
            row["bucket_counts"] = [str(c) for c in counts]
        elif kind == "exponential_histogram":
            _merge_exponential(group, row)
        out.append(row)
    return out


def rollup_series(points: list[dict[str, Any]], before: dict[str, Any] | None,
                  ) -> list[dict[str, Any]]:
    """One series' points of one hour (time order) → its rollup rows.

    ``before``: the series' last point before the hour, if known (the baseline of reset
    detection; without it the hour's first point is kept too, which is always exact).
    """
    last = points[-1]
    if last["type"] == "gauge":
        return [_stats(_mark(last), points)]
    if last["temporality"] == 1:
        return _delta(points)
    return _kept(points, before)


# -- the job ---------------------------------------------------------------------------------


def _baselines(store: TelemetryStore, project_id: int, hour: dt.datetime,
               ) -> dict[int, dict[str, Any]]:
    rows = store.rows(
        "SELECT series_id, type, timestamp, start_time, value, count, bounds, scale "
        "FROM metric_points_1h WHERE project_id = {p:UInt64} AND timestamp >= "
        "{a:DateTime64(6)} AND timestamp < {b:DateTime64(6)} ORDER BY series_id, timestamp",
        {"p": project_id, "a": hour - BASELINE, "b": hour})
    return {r["series_id"]: r for r in rows}


def _signature(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    def num(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    return sorted((int(r["series_id"]), r["timestamp"], num(r["value"]), int(r["count"]),
                   num(r["sum"])) for r in rows)


def roll_hour(store: TelemetryStore, project_id: int, hour: dt.datetime,
              baselines: dict[int, dict[str, Any]]) -> int:
    """Roll up (or re-roll) one project-hour; returns the number of rollup rows written."""
    by_series: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in _raw_hour(store, project_id, hour):
        by_series[r["series_id"]].append(r)
    out: list[dict[str, Any]] = []
    for sid, points in by_series.items():
        out += rollup_series(points, baselines.get(sid))
        baselines[sid] = points[-1]
    params = {"p": project_id, "a": hour, "b": hour + HOUR}
    cond = ("project_id = {p:UInt64} AND timestamp >= {a:DateTime64(6)} "
            "AND timestamp < {b:DateTime64(6)}")
    old = store.rows(f"SELECT series_id, timestamp, value, count, sum FROM metric_points_1h "
                     f"WHERE {cond}", params)
    if _signature(old) == _signature(out):
        return 0
    if old:
        store.execute(f"DELETE FROM metric_points_1h WHERE {cond}", params)
    if out:
        store.insert(METRIC_POINTS_1H, pa.Table.from_pylist(
            [{k: r[k] for k in _NAMES} for r in out], schema=METRIC_POINTS_1H.arrow_schema))
    return len(out)


def roll_project(store: TelemetryStore, project_id: int, now: dt.datetime) -> int:
    end = floor_hour(now)  # hours that ended by now are complete
    done = rolled_until(store, project_id)
    if done is None:
        first = store.scalar("SELECT min(timestamp) FROM metric_points WHERE project_id = "
                             "{p:UInt64}", {"p": project_id})
        if first is None or first <= dt.datetime(1971, 1, 1):
            return 0
        start = floor_hour(first)
    else:
        start = min(done, end - REROLL_HOURS * HOUR)
    stop = min(end, start + MAX_HOURS_PER_RUN * HOUR)
    written = 0
    baselines = _baselines(store, project_id, start)
    hour: dt.datetime | None = start
    while hour is not None and hour < stop:
        written += roll_hour(store, project_id, hour, baselines)
        # Skip hours without points (a re-rolled one may have lost its rollup rows, above).
        hour = _next_data(store, project_id, hour + HOUR, stop)
    return written


def run_rollups(db: Any, store: TelemetryStore, now: dt.datetime | None = None) -> int:
    """The job: roll up every project's complete hours. Returns the rollup rows written."""
    from sqlalchemy import select

    from spyglass.kernel.meta.models import Project

    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with db.session() as s:
        projects = list(s.scalars(select(Project.id)))
    return sum(roll_project(store, pid, now) for pid in projects)


def install(app: Any) -> None:
    runtime = app.state.runtime
    runtime.jobs.add("metric-rollups", INTERVAL_S,
                     lambda: run_rollups(runtime.db, runtime.store))
