"""The batching writer: group commit, bounded memory, failure isolation, and durability."""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
import pyarrow as pa
import pytest

from spyglass.kernel.ingest.writer import (
    BatchingWriter,
    MalformedRows,
    Overloaded,
    WriteFailed,
    WriterStopped,
)
from spyglass.kernel.telemetry import Column, TableSpec, open_telemetry_store

SPEC = TableSpec(
    "t_writes",
    (Column("project_id", "uint64"), Column("timestamp", "datetime"), Column("n", "int64")),
    order_by=("project_id", "timestamp"),
)


class CountingStore:
    """Wraps a real store and records the size of each insert (each is one commit)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.inserts: list[int] = []
        self.fail_next = False
        self.gate = threading.Event()
        self.gate.set()

    def insert(self, spec, data: pa.Table) -> None:  # type: ignore[no-untyped-def]
        self.gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("disk on fire")
        self.inserts.append(data.num_rows)
        self.inner.insert(spec, data)


@pytest.fixture
def store(settings):
    s = open_telemetry_store(settings.clickhouse_url, settings.data_dir)
    s.ensure_table(SPEC)
    yield s
    s.close()


def row(n: int) -> dict:
    import datetime as dt

    return {"project_id": 1, "timestamp": dt.datetime(2026, 1, 1) + dt.timedelta(seconds=n), "n": n}


def test_concurrent_writes_are_committed_in_groups(store):
    counting = CountingStore(store)
    writer = BatchingWriter(counting, batch_rows=1000, interval_ms=30)
    writer.start()
    try:
        async def many() -> None:
            await asyncio.gather(*(writer.write(SPEC, [row(i)]) for i in range(500)))

        asyncio.run(many())
    finally:
        writer.stop()
    assert store.count("t_writes") == 500
    # 500 requests, far fewer commits: that is the point of group commit.
    assert sum(counting.inserts) == 500 and len(counting.inserts) < 50


def test_acknowledged_means_committed(store):
    writer = BatchingWriter(store, batch_rows=10, interval_ms=1000)
    writer.start()
    try:
        writer.write_sync(SPEC, [row(i) for i in range(25)])
        # write_sync returned, so the rows are visible without waiting for the interval.
        assert store.count("t_writes") == 25
    finally:
        writer.stop()


def test_overload_is_refused_not_queued(store):
    counting = CountingStore(store)
    counting.gate.clear()  # the store stalls
    writer = BatchingWriter(counting, batch_rows=5, interval_ms=5, max_pending_rows=20)
    writer.start()
    try:
        first = writer.submit(SPEC, [row(i) for i in range(15)])
        with pytest.raises(Overloaded) as info:
            writer.submit(SPEC, [row(i) for i in range(10)])
        assert info.value.retry_after >= 1
        assert writer.pending_rows == 15
        counting.gate.set()
        first.result(10)
        assert writer.pending_rows == 0
        writer.submit(SPEC, [row(99)]).result(10)  # accepted again once drained
    finally:
        counting.gate.set()
        writer.stop()
    assert store.count("t_writes") == 16


def test_a_failed_commit_fails_its_waiters_only(store):
    counting = CountingStore(store)
    writer = BatchingWriter(counting, batch_rows=1, interval_ms=5)
    writer.start()
    try:
        counting.fail_next = True
        with pytest.raises(WriteFailed):
            writer.submit(SPEC, [row(1)]).result(10)
        writer.submit(SPEC, [row(2)]).result(10)
    finally:
        writer.stop()
    assert store.count("t_writes") == 1


def test_malformed_rows_fail_their_request_only(store):
    writer = BatchingWriter(store, batch_rows=10_000, interval_ms=50)
    writer.start()
    try:
        bad = writer.submit(SPEC, [{"project_id": "not a number", "timestamp": None, "n": 1}])
        good = [writer.submit(SPEC, [row(i)]) for i in range(3)]
        with pytest.raises(MalformedRows):
            bad.result(10)
        for f in good:
            f.result(10)
    finally:
        writer.stop()
    assert store.count("t_writes") == 3


def test_stop_flushes_and_then_refuses(store):
    writer = BatchingWriter(store, batch_rows=10_000, interval_ms=10_000)
    writer.start()
    future = writer.submit(SPEC, [row(i) for i in range(7)])
    writer.stop()
    future.result(1)
    assert store.count("t_writes") == 7
    with pytest.raises(WriterStopped):
        writer.submit(SPEC, [row(8)])


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_event(settings, server_factory, tmp_path):
    """Kill -9 the server under load; every event it acknowledged must be stored."""
    from spyglass.cli import main
    from click.testing import CliRunner

    out = CliRunner().invoke(
        main, ["project", "create", "--org", "acme", "--name", "durable", "--json",
               "--data-dir", str(settings.data_dir)],
        env={"SPYGLASS_DATABASE_URL": settings.database_url},
    )
    assert out.exit_code == 0, out.output
    import orjson

    project = orjson.loads(out.output)
    server = server_factory()
    url = f"{server.url}/api/{project['id']}/envelope/?sentry_key={project['public_key']}"
    acknowledged: list[str] = []
    attempted = 0
    lock = threading.Lock()
    stop = threading.Event()

    def producer() -> None:
        nonlocal attempted
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                event_id = uuid.uuid4().hex
                body = (b'{"event_id":"%s"}\n{"type":"event"}\n' % event_id.encode()
                        + b'{"message":"durability","event_id":"%s"}\n' % event_id.encode())
                with lock:
                    attempted += 1
                try:
                    r = http.post(url, content=body)
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    with lock:
                        acknowledged.append(event_id)

    threads = [threading.Thread(target=producer) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = 60.0
    import time

    started = time.monotonic()
    while len(acknowledged) < 200 and time.monotonic() - started < deadline:
        time.sleep(0.05)
    server.kill()  # SIGKILL while requests are in flight
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= 50, "the server acknowledged too little to prove anything"
    assert attempted > len(acknowledged)  # some requests were cut off by the kill

    restarted = server_factory()  # recovers (WAL replay) and reports ready
    restarted.stop()
    store = open_telemetry_store(settings.clickhouse_url, settings.data_dir)
    try:
        stored = {r["event_id"] for r in store.rows(
            "SELECT event_id FROM events WHERE project_id = {p:UInt64}", {"p": project["id"]})}
    finally:
        store.close()
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged events lost of {len(acknowledged)}"
