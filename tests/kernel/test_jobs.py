"""Periodic jobs: leader election and retention."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from sqlalchemy import select

from spyglass.kernel.jobs.leader import leadership_for
from spyglass.kernel.jobs.retention import apply_retention
from spyglass.kernel.jobs.runner import JobRunner
from spyglass.kernel.meta.models import Project
from spyglass.kernel.telemetry import Column, TableSpec, register_table

POINTS = register_table(TableSpec(
    "t_retained",
    (Column("project_id", "uint64"), Column("timestamp", "datetime"), Column("v", "int64")),
    order_by=("project_id", "timestamp"),
))


def test_only_one_leader_at_a_time(runtime):
    first = leadership_for(runtime.db.engine, runtime.settings.data_dir)
    second = leadership_for(runtime.db.engine, runtime.settings.data_dir)
    assert first.try_acquire()
    assert first.try_acquire()  # re-entrant for the holder
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


def test_runner_runs_jobs_only_when_leader(runtime):
    holder = leadership_for(runtime.db.engine, runtime.settings.data_dir)
    assert holder.try_acquire()
    calls: list[int] = []
    runner = JobRunner(leadership_for(runtime.db.engine, runtime.settings.data_dir), tick_s=0.02)
    runner.add("count", 0.01, lambda: calls.append(1))
    runner.start()
    try:
        import time

        time.sleep(0.3)
        assert calls == [] and not runner.is_leader
        holder.release()
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
        assert calls and runner.is_leader
    finally:
        runner.stop()


def test_retention_keeps_each_project_for_its_own_days(runtime, tenant_maker):
    a, b = tenant_maker(runtime.db, "short").project_id, tenant_maker(runtime.db, "long").project_id
    with runtime.db.session() as s:
        for p in s.scalars(select(Project)):
            p.retention_days = 7 if p.id == a else 30
    now = dt.datetime(2026, 11, 27, 12, 0)
    rows = [
        {"project_id": pid, "timestamp": now - dt.timedelta(days=age), "v": age}
        for pid in (a, b) for age in (1, 10, 40)
    ]
    runtime.store.ensure_table(POINTS)
    runtime.store.insert(POINTS, pa.Table.from_pylist(rows, schema=POINTS.arrow_schema))
    from spyglass.kernel.jobs.retention import blob_day_prefix, register_blob_kind

    register_blob_kind("t_things")
    for pid in (a, b):
        for age in (1, 10, 40):
            day = (now - dt.timedelta(days=age)).date()
            runtime.blobs.put(blob_day_prefix("t_things", pid, day) + "x", b"data")
    apply_retention(runtime.db, runtime.store, runtime.blobs, now=now.replace(tzinfo=dt.UTC))
    expected = {blob_day_prefix("t_things", pid, (now - dt.timedelta(days=age)).date()) + "x"
                for pid, age in ((a, 1), (b, 1), (b, 10))}
    assert set(runtime.blobs.iter_keys("t_things/")) == expected
    left = {(r["project_id"], r["v"]) for r in runtime.store.rows("SELECT project_id, v FROM t_retained")}
    assert left == {(a, 1), (b, 1), (b, 10)}
