"""Metric rollups (issue 4): a month-long chart from raw points vs from hourly rollups.

Writes ``--series`` cumulative counters (10 routes) and as many gauges, one point per
``--interval`` seconds over ``--days`` days, into a fresh DuckDB store (``--chdb`` for the
ClickHouse engine), rolls them up with the job's code, then times chart queries over the whole
range read raw (``rollups=False``) and from rollups; prints medians of ``--repeat`` runs.

    .venv/bin/python benchmarks/metric_rollups.py --series 100 --days 30 --interval 60
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from spyglass.kernel.telemetry import open_telemetry_store, registered_tables
from spyglass.otel import metrics_queries as mq
from spyglass.otel import rollups
from spyglass.otel.schema import METRIC_POINTS


def chunk(pid: int, start: dt.datetime, series: int, steps: range, interval: int) -> pa.Table:
    n = series * len(steps) * 2
    cols: dict[str, list] = {c.name: [] for c in METRIC_POINTS.columns}
    const = {"project_id": pid, "unit": "1", "description": "", "service": "api", "count": 0, "sum": math.nan,
                 "min": math.nan, "max": math.nan, "bounds": [], "bucket_counts": [], "scale": 0, "zero_count": 0,
                 "zero_threshold": 0.0, "positive_offset": 0, "positive_counts": [], "negative_offset": 0,
                 "negative_counts": [], "quantiles": [], "quantile_values": [], "flags": 0, "exemplars": "",
                 "scope_name": "bench", "resource_id": 0}
    for s in range(series):
        attrs = {"route": f"/r{s % 10}", "pod": f"p{s}"}
        for metric, kind, sid in (("requests", "sum", s), ("cpu", "gauge", 10_000 + s)):
            for k in steps:
                cols["metric"].append(metric)
                cols["type"].append(kind)
                cols["temporality"].append(2 if kind == "sum" else 0)
                cols["monotonic"].append(kind == "sum")
                cols["series_id"].append(sid)
                cols["timestamp"].append(start + dt.timedelta(seconds=k * interval + s % 60))
                cols["start_time"].append(start)
                cols["value"].append(float(k * (s + 1)) if kind == "sum"
                                     else 50 + 40 * math.sin(k / 50 + s))
                cols["attributes"].append(attrs)
    for name, value in const.items():
        cols[name] = [value] * n
    return pa.Table.from_pydict(cols, schema=METRIC_POINTS.arrow_schema)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--interval", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chdb", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    store = open_telemetry_store(f"chdb://{tmp / 'ch'}" if args.chdb else "", tmp)
    for spec in registered_tables().values():
        store.ensure_table(spec)
    pid = 1
    now = rollups.floor_hour(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    start = now - dt.timedelta(days=args.days)
    per_day = 86400 // args.interval
    t = time.perf_counter()
    for day in range(args.days):
        store.insert(METRIC_POINTS, chunk(pid, start, args.series,
                                          range(day * per_day, (day + 1) * per_day),
                                          args.interval))
    raw_points = store.count("metric_points")
    print(f"engine {store.dialect}: {raw_points:,} raw points "
          f"({args.series} counters + {args.series} gauges, {args.days} d every "
          f"{args.interval} s) written in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    hours = 0
    while rollups.rolled_until(store, pid) != now:
        rollups.roll_project(store, pid, now + dt.timedelta(minutes=5))
        hours += 1
    took = time.perf_counter() - t
    print(f"rollup job: {store.count('metric_points_1h'):,} rollup rows in {took:.1f} s "
          f"({raw_points / took:,.0f} raw points/s)")
    since, until = start + dt.timedelta(minutes=7), now
    cases = [("rate of one route (10% of series)", "requests", "rate", ["route=/r3"], []),
             ("rate by route (all series)", "requests", "rate", [], ["route"]),
             ("gauge avg by route", "cpu", "avg", [], ["route"]),
             ("gauge max, one pod", "cpu", "max", ["pod=p7"], [])]
    print(f"\n{'query over ' + str(args.days) + ' days':40} {'raw ms':>9} {'points':>9} "
          f"{'rollups ms':>11} {'points':>8}  same")
    for label, metric, agg, filters, group_by in cases:
        q = mq.MetricQuery.from_json({"metric": metric, "aggregation": agg,
                                      "filters": filters, "group_by": group_by})
        out = {}
        for use in (False, True):
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                res = mq.run(store, pid, q, since, until, rollups=use)
                times.append(time.perf_counter() - t)
            out[use] = (statistics.median(times) * 1000, res)
        raw, fast = out[False][1], out[True][1]
        same = not raw.truncated and all(
            all((a is None and b is None) or (a is not None and b is not None
                                              and math.isclose(a, b, rel_tol=1e-9))
                for a, b in zip(x.values, y.values, strict=True))
            for x, y in zip(sorted(raw.series, key=lambda s: s.label),
                            sorted(fast.series, key=lambda s: s.label), strict=True))
        print(f"{label:40} {out[False][0]:9.0f} {raw.points:>9,}{'*' if raw.truncated else ' '}"
              f"{out[True][0]:10.0f} {fast.points:>8,}  {'yes' if same else 'NO'}")
    print("* truncated at 500,000 points: the raw chart is incomplete")
    store.close()


if __name__ == "__main__":
    main()
