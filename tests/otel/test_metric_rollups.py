"""Hourly metric rollups: the rows the job writes, and charts over a week read from rollups
giving the same figures as from raw points (counter resets, deltas, gauges, histograms of each
kind), while reading far fewer rows; late points re-rolled."""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
import pytest

from spyglass.otel import metrics_queries as mq
from spyglass.otel import rollups
from spyglass.otel.schema import METRIC_POINTS

NOW = rollups.floor_hour(dt.datetime.now(dt.UTC).replace(tzinfo=None))
START = NOW - dt.timedelta(days=8)
OLD = START - dt.timedelta(days=1)
EVERY = dt.timedelta(minutes=5)
N = 8 * 24 * 12  # points per series: every 5 minutes for 8 days
JOB_NOW = NOW - dt.timedelta(hours=5, minutes=-3)  # the last 5 hours stay raw


def at(k: int) -> dt.datetime:
    return START + dt.timedelta(seconds=150) + k * EVERY


def base(pid: int, metric: str, sid: int, k: int, **kw) -> dict:  # type: ignore[no-untyped-def]
    row = {"project_id": pid, "metric": metric, "type": "sum", "unit": "1", "description": "",
               "temporality": 2, "monotonic": True, "service": "api", "series_id": sid, "timestamp": at(k),
               "start_time": OLD, "value": math.nan, "count": 0, "sum": math.nan, "min": math.nan,
               "max": math.nan, "bounds": [], "bucket_counts": [], "scale": 0, "zero_count": 0,
               "zero_threshold": 0.0, "positive_offset": 0, "positive_counts": [], "negative_offset": 0,
               "negative_counts": [], "quantiles": [], "quantile_values": [], "flags": 0, "exemplars": "",
               "scope_name": "test", "attributes": {}, "resource_id": 0}
    row.update(kw)
    return row


# Counter resets (index of the point): a drop mid-hour; a drop mid-hour after which the counter
# grows past its old value within the hour; a drop on an hour's first point; a restart (new
# start_time) mid-hour.
DROP, DROP_BIG, DROP_EDGE, RESTART = 30 * 12 + 6, 50 * 12 + 4, 70 * 12, 100 * 12 + 7
HIST_RESET = 40 * 12 + 5


def build(pid: int) -> list[dict]:
    rows = []
    value, inc, start = 0.0, 10.0, OLD
    for k in range(N):
        if k in (DROP, DROP_BIG, DROP_EDGE):
            value, inc = 5.0, (value if k != DROP else 10.0)
        elif k == RESTART:
            value, inc, start = 3.0, 7.0, at(k) - dt.timedelta(seconds=30)
        else:
            value += inc
        rows.append(base(pid, "req", 1, k, value=value, start_time=start))
        rows.append(base(pid, "jobs", 2, k, value=float(k % 7), temporality=1,
                         start_time=at(k) - EVERY))
        for sid, host in ((3, "a"), (4, "b")):
            rows.append(base(pid, "cpu", sid, k, type="gauge", temporality=0, monotonic=False,
                             value=50 + 40 * math.sin(k / (7 + sid)), attributes={"host": host}))
    counts = [0, 0, 0, 0]
    for k in range(N):
        if k == HIST_RESET:
            counts = [0, 1, 0, 0]
        else:
            counts = [counts[0] + 1, counts[1] + 2 + k % 3, counts[2] + (k % 5 == 0), counts[3]]
        rows.append(base(pid, "lat", 5, k, type="histogram", bounds=["10", "100", "1000"],
                         bucket_counts=[str(c) for c in counts], count=sum(counts),
                         sum=float(sum(counts) * 42)))
        d = [k % 3, 1, k % 2, k % 11 == 0]
        rows.append(base(pid, "dlat", 6, k, type="histogram", temporality=1,
                         bounds=["10", "100", "1000"], bucket_counts=[str(int(c)) for c in d],
                         count=int(sum(d)), sum=float(sum(d)) * 7, min=1.0 + k % 4,
                         max=900.0 - k % 9, start_time=at(k) - EVERY))
        scale = k % 2
        exp = ({"positive_offset": 0, "positive_counts": ["1", "2"]} if scale
               else {"positive_offset": 1, "positive_counts": [str(1 + k % 3)]})
        rows.append(base(pid, "size", 7, k, type="exponential_histogram", temporality=1,
                         scale=scale, count=3, zero_count=k % 2, **exp))
    return rows


@pytest.fixture
def loaded(runtime, tenant_maker):  # type: ignore[no-untyped-def]
    pid = tenant_maker(runtime.db, "rollups").project_id
    runtime.store.insert(METRIC_POINTS, pa.Table.from_pylist(build(pid),
                                                             schema=METRIC_POINTS.arrow_schema))
    assert rollups.run_rollups(runtime.db, runtime.store, now=JOB_NOW) > 0
    return runtime, pid


def hour_rows(store, pid: int, metric: str, k: int) -> list[dict]:  # type: ignore[no-untyped-def]
    h = rollups.floor_hour(at(k))
    return store.rows("SELECT * FROM metric_points_1h WHERE project_id = {p:UInt64} AND "
                      "metric = {m:String} AND timestamp >= {a:DateTime64(6)} AND timestamp < "
                      "{b:DateTime64(6)} ORDER BY timestamp",
                      {"p": pid, "m": metric, "a": h, "b": h + rollups.HOUR})


def test_rollup_rows(loaded) -> None:  # type: ignore[no-untyped-def]
    rt, pid = loaded
    store = rt.store
    assert rollups.rolled_until(store, pid) == rollups.floor_hour(JOB_NOW)
    # a quiet hour of a counter: its last point only
    quiet = hour_rows(store, pid, "req", 10 * 12)
    assert [r["timestamp"] for r in quiet] == [at(10 * 12 + 11)]
    assert quiet[0]["flags"] & rollups.ROLLUP_FLAG
    # resets: both sides of the drop, and the last point
    assert [r["timestamp"] for r in hour_rows(store, pid, "req", DROP)] == [
        at(DROP - 1), at(DROP), at(DROP - DROP % 12 + 11)]
    assert len(hour_rows(store, pid, "req", DROP_EDGE)) == 2  # first point of the hour kept
    assert [r["timestamp"] for r in hour_rows(store, pid, "lat", HIST_RESET)] == [
        at(HIST_RESET - 1), at(HIST_RESET), at(HIST_RESET - HIST_RESET % 12 + 11)]
    # a delta counter: the hour's sum, from the first point's start
    (jobs,) = hour_rows(store, pid, "jobs", 24)
    assert jobs["value"] == sum(k % 7 for k in range(24, 36))
    assert jobs["start_time"] == at(24) - EVERY and jobs["timestamp"] == at(35)
    # a gauge: last value, and the hour's min/max/sum/count
    cpu = [r for r in hour_rows(store, pid, "cpu", 24) if r["series_id"] == 3]
    vals = [50 + 40 * math.sin(k / 10) for k in range(24, 36)]
    assert len(cpu) == 1 and cpu[0]["value"] == pytest.approx(vals[-1])
    assert (cpu[0]["min"], cpu[0]["max"], cpu[0]["count"]) == (
        pytest.approx(min(vals)), pytest.approx(max(vals)), 12)
    assert cpu[0]["sum"] == pytest.approx(sum(vals))
    # a delta histogram: buckets and count added up, min of mins, max of maxes
    (dlat,) = hour_rows(store, pid, "dlat", 24)
    assert [int(c) for c in dlat["bucket_counts"]] == [
        sum(k % 3 for k in range(24, 36)), 12, 6, sum(k % 11 == 0 for k in range(24, 36))]
    assert dlat["count"] == sum(int(c) for c in dlat["bucket_counts"])
    assert (dlat["min"], dlat["max"]) == (1.0, 900.0)
    # a delta exponential histogram of scale 0 and 1 points: merged at scale 0
    (size,) = hour_rows(store, pid, "size", 12)
    assert size["scale"] == 0 and size["count"] == 36
    # a second run with nothing new writes nothing
    assert rollups.run_rollups(rt.db, store, now=JOB_NOW) == 0


CASES = [("req", "rate"), ("req", "increase"), ("req", "max"), ("req", "last"),
         ("jobs", "rate"), ("jobs", "increase"), ("jobs", "sum"), ("jobs", "avg"),
         ("cpu", "avg"), ("cpu", "min"), ("cpu", "max"), ("cpu", "last"), ("cpu", "sum"),
         ("lat", "p50"), ("lat", "p95"), ("lat", "rate"), ("lat", "avg"),
         ("dlat", "p50"), ("dlat", "p95"), ("dlat", "increase"), ("dlat", "avg"),
         ("size", "p50"), ("size", "p95")]


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None
                                      and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9))
        for x, y in zip(a, b, strict=True))


def chart(store, pid, metric, agg, since, until, rollups_=True, group_by=()):  # type: ignore[no-untyped-def]
    q = mq.MetricQuery.from_json({"metric": metric, "aggregation": agg,
                                  "group_by": list(group_by)})
    return mq.run(store, pid, q, since, until, rollups=rollups_)


def test_charts_from_rollups_equal_raw(loaded) -> None:  # type: ignore[no-untyped-def]
    rt, pid = loaded
    store = rt.store
    # Not hour-aligned ends; the last hours are not rolled up yet (read raw).
    for since, until in ((NOW - dt.timedelta(days=7, minutes=-17), NOW - dt.timedelta(minutes=20)),
                         (NOW - dt.timedelta(days=3, hours=2), NOW - dt.timedelta(hours=1))):
        for metric, agg in CASES:
            fast = chart(store, pid, metric, agg, since, until)
            slow = chart(store, pid, metric, agg, since, until, rollups_=False)
            assert fast.step == slow.step >= 3600
            assert len(fast.series) == len(slow.series) == 1, (metric, agg)
            assert same(fast.series[0].values, slow.series[0].values), (
                metric, agg, fast.series[0].values, slow.series[0].values)
            assert any(v is not None for v in fast.series[0].values)
            assert fast.points * 5 < slow.points, (metric, agg, fast.points, slow.points)
    by_host = chart(store, pid, "cpu", "avg", since, until, group_by=["host"])
    raw = chart(store, pid, "cpu", "avg", since, until, rollups_=False, group_by=["host"])
    assert {s.label: s.values for s in by_host.series}.keys() == {"host=a", "host=b"}
    for s, r in zip(sorted(by_host.series, key=lambda s: s.label),
                    sorted(raw.series, key=lambda s: s.label), strict=True):
        assert same(s.values, r.values)
    # short ranges read raw points
    short = chart(store, pid, "req", "rate", NOW - dt.timedelta(hours=30), NOW)
    assert short.points >= 30 * 12


def test_late_points_are_rerolled(loaded) -> None:  # type: ignore[no-untyped-def]
    rt, pid = loaded
    store = rt.store
    last_hour = rollups.floor_hour(JOB_NOW) - rollups.HOUR
    late = base(pid, "cpu", 3, 0, type="gauge", temporality=0, monotonic=False, value=1000.0,
                timestamp=last_hour + dt.timedelta(minutes=1), attributes={"host": "a"})
    store.insert(METRIC_POINTS, pa.Table.from_pylist([late], schema=METRIC_POINTS.arrow_schema))
    assert rollups.run_rollups(rt.db, store, now=JOB_NOW) > 0
    rows = store.rows("SELECT max, count FROM metric_points_1h WHERE project_id = {p:UInt64} "
                      "AND series_id = 3 AND timestamp >= {a:DateTime64(6)}",
                      {"p": pid, "a": last_hour})
    assert rows == [{"max": 1000.0, "count": 13}]
    since, until = NOW - dt.timedelta(days=7), NOW
    fast = chart(store, pid, "cpu", "max", since, until)
    assert 1000.0 in fast.series[0].values
    assert same(fast.series[0].values,
                chart(store, pid, "cpu", "max", since, until, rollups_=False).series[0].values)
