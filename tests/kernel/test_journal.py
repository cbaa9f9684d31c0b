"""The ingest journal: durable appends, bulk loads, reads that see every acknowledged row,
and recovery after a crash that loads each record exactly once."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.kernel.telemetry import Column, TableSpec
from spyglass.kernel.telemetry.duckdb import DuckDBStore
from spyglass.kernel.telemetry.journal import Journal, JournaledStore, from_ipc, to_ipc

SPEC = TableSpec(
    name="journal_things",
    columns=(Column("project_id", "uint64"), Column("timestamp", "datetime"),
             Column("name", "string"), Column("n", "int64")),
    order_by=("project_id", "timestamp"),
)
T0 = dt.datetime(2026, 11, 27, 12, 0)


def rows(names: list[str], start: int = 0) -> pa.Table:
    return pa.Table.from_pylist(
        [{"project_id": 1, "timestamp": T0, "name": n, "n": start + i} for i, n in enumerate(names)],
        schema=SPEC.arrow_schema)


def open_store(tmp_path: Path, **kw) -> JournaledStore:
    store = JournaledStore(DuckDBStore(tmp_path / "t.duckdb"), tmp_path / "t.duckdb.journal",
                           **kw)
    store.ensure_table(SPEC)
    store.recover()
    return store


def crash(store: JournaledStore) -> None:
    """What a SIGKILL leaves: the files as they are, nothing waiting loaded."""
    if store._loader is not None:
        with store._cond:
            store._stopping = True
            store._cond.notify_all()
        store._loader.join()
    store.journal.close()
    store.inner.close()


def names_in(store: DuckDBStore) -> list[str]:
    return sorted(r["name"] for r in store.rows("SELECT name FROM journal_things"))


def test_records_come_back_in_order_across_segments(tmp_path):
    journal = Journal(tmp_path / "j", segment_bytes=200)
    payloads = [to_ipc(rows([f"r{i}"])) for i in range(6)]
    seqs = [journal.append("journal_things", p) for p in payloads]
    journal.close()
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert len(journal.segments()) > 1  # 200 bytes hold one record: rotated
    again = Journal(tmp_path / "j", segment_bytes=200)
    back = list(again.replay())
    assert [s for s, _n, _p in back] == seqs
    assert [from_ipc(p).column("name").to_pylist() for _s, _n, p in back] == [
        [f"r{i}"] for i in range(6)]
    assert again.next_seq == 7


def test_a_torn_record_is_cut_off_and_appends_go_on(tmp_path):
    journal = Journal(tmp_path / "j")
    journal.append("journal_things", to_ipc(rows(["a"])))
    journal.append("journal_things", to_ipc(rows(["b"])))
    journal.close()
    [(_first, path)] = journal.segments()
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # the crash came in the middle of the second record
    again = Journal(tmp_path / "j")
    assert [from_ipc(p).column("name").to_pylist() for _s, _n, p in again.replay()] == [["a"]]
    assert again.next_seq == 2
    assert again.append("journal_things", to_ipc(rows(["c"]))) == 2
    again.close()
    third = Journal(tmp_path / "j")
    assert [from_ipc(p).column("name").to_pylist() for _s, _n, p in third.replay()] == [
        ["a"], ["c"]]


def test_a_record_with_a_bad_checksum_is_not_loaded(tmp_path):
    journal = Journal(tmp_path / "j")
    journal.append("journal_things", to_ipc(rows(["a"])))
    journal.close()
    [(_first, path)] = journal.segments()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the payload
    path.write_bytes(bytes(data))
    assert list(Journal(tmp_path / "j").replay()) == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=400))
def test_replay_never_fails_on_garbage(tmp_path_factory, garbage, cut):
    directory = tmp_path_factory.mktemp("j")
    journal = Journal(directory)
    journal.append("journal_things", to_ipc(rows(["kept"])))
    journal.close()
    [(_first, path)] = journal.segments()
    good = path.read_bytes()
    path.write_bytes(good + garbage[:cut])
    back = list(Journal(directory).replay())
    # The whole record always survives; garbage after it never yields a record (a random
    # tail passing the magic, lengths and CRC-32 is not something 200 examples will make).
    assert [from_ipc(p).column("name").to_pylist() for _s, _n, p in back] == [["kept"]]
    assert path.read_bytes() == good


def test_reads_see_every_acknowledged_row_before_the_loader_runs(tmp_path):
    store = open_store(tmp_path, load_interval_s=60)
    try:
        store.insert(SPEC, rows(["a", "b"]))
        assert store.waiting_rows == 2
        assert names_in(store.inner) == []  # not loaded yet ...
        assert names_in(store) == ["a", "b"]  # ... but a read loads it first
        assert store.waiting_rows == 0
        store.insert(SPEC, rows(["c"]))
        store.execute("UPDATE journal_things SET n = 100")  # statements see it too
        assert store.scalar("SELECT min(n) FROM journal_things") == 100
    finally:
        store.close()


def test_the_loader_loads_in_the_background(tmp_path):
    store = open_store(tmp_path, load_interval_s=0.05)
    try:
        store.insert(SPEC, rows(["a"]))
        deadline = time.monotonic() + 10
        while names_in(store.inner) != ["a"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert names_in(store.inner) == ["a"]
    finally:
        store.close()


def test_a_crash_loses_nothing_and_loads_nothing_twice(tmp_path):
    store = open_store(tmp_path, load_interval_s=60)
    store.insert(SPEC, rows(["loaded"]))
    store.settle()  # this one reached DuckDB (its segment is still the one being written)
    store.insert(SPEC, rows(["journaled1"]))
    store.insert(SPEC, rows(["journaled2"]))
    crash(store)

    again = open_store(tmp_path, load_interval_s=60)
    assert names_in(again.inner) == ["journaled1", "journaled2", "loaded"]
    again.insert(SPEC, rows(["after"]))
    crash(again)
    third = open_store(tmp_path, load_interval_s=60)
    try:
        assert names_in(third) == ["after", "journaled1", "journaled2", "loaded"]
    finally:
        third.close()


def test_loaded_segments_are_deleted(tmp_path):
    store = open_store(tmp_path, load_interval_s=60)
    store.journal.segment_bytes = 1  # a new segment for every record
    try:
        for i in range(5):
            store.insert(SPEC, rows([f"r{i}"]))
        assert len(store.journal.segments()) == 5
        store.settle()
        assert len(store.journal.segments()) == 1  # the one being written
    finally:
        store.close()
    assert names_in(DuckDBStore(tmp_path / "t.duckdb")) == [f"r{i}" for i in range(5)]


def test_a_failed_load_keeps_the_rows_for_the_next(tmp_path, monkeypatch):
    store = open_store(tmp_path, load_interval_s=60)
    try:
        store.insert(SPEC, rows(["a"]))
        real = store.inner.insert_all
        calls = []

        def failing(batches, seq):
            calls.append(seq)
            if len(calls) == 1:
                raise OSError("disk full")
            real(batches, seq)

        monkeypatch.setattr(store.inner, "insert_all", failing)
        store.settle()  # logged, the read goes on
        assert store.waiting_rows == 1 and names_in(store.inner) == []
        store.insert(SPEC, rows(["b"]))
        assert names_in(store) == ["a", "b"]
    finally:
        store.close()


def test_without_the_journal_inserts_go_straight_in_and_leftovers_still_load(tmp_path):
    store = open_store(tmp_path, load_interval_s=60)
    store.insert(SPEC, rows(["left in the journal"]))
    crash(store)
    direct = open_store(tmp_path, enabled=False)
    try:
        assert names_in(direct.inner) == ["left in the journal"]
        direct.insert(SPEC, rows(["direct"]))
        assert names_in(direct.inner) == ["direct", "left in the journal"]
        assert direct.waiting_rows == 0
    finally:
        direct.close()


def test_batches_with_different_columns_load_together(tmp_path):
    store = open_store(tmp_path, load_interval_s=60)
    try:
        store.insert(SPEC, rows(["full"]))
        store.insert(SPEC, pa.table({"project_id": pa.array([1], pa.uint64()),
                                     "timestamp": pa.array([T0], pa.timestamp("us")),
                                     "name": ["partial"]}))
        assert names_in(store) == ["full", "partial"]
    finally:
        store.close()


@pytest.mark.parametrize("bad", [b"", b"SGJ1", b"XXXX" + b"\0" * 40])
def test_a_segment_of_only_garbage_yields_nothing(tmp_path, bad):
    directory = tmp_path / "j"
    directory.mkdir()
    (directory / f"{1:020d}.journal").write_bytes(bad)
    assert list(Journal(directory).replay()) == []


def test_a_loader_far_behind_makes_the_writer_load(tmp_path, monkeypatch):
    store = open_store(tmp_path, load_interval_s=60, max_waiting_bytes=1)
    try:
        store.insert(SPEC, rows(["a"]))  # waits: under the limit before it came
        assert store.waiting_rows == 1
        store.insert(SPEC, rows(["b"]))  # over it: the first is loaded here, then b waits
        assert names_in(store.inner) == ["a"] and store.waiting_rows == 1

        def failing(batches, seq):
            raise OSError("disk full")

        monkeypatch.setattr(store.inner, "insert_all", failing)
        with pytest.raises(OSError):
            store.insert(SPEC, rows(["c"]))  # nothing appended: the writer answers 503
        assert store.waiting_rows == 1
        monkeypatch.undo()
        assert names_in(store) == ["a", "b"]
    finally:
        store.close()


def test_a_failed_append_is_cut_off_and_later_records_stay_readable(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "j")
    journal.append("journal_things", to_ipc(rows(["a"])))
    real_sync = os.fdatasync
    calls = []

    def full_disk(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real_sync(fd)

    monkeypatch.setattr("spyglass.kernel.telemetry.journal.os.fdatasync", full_disk)
    with pytest.raises(OSError):  # its request is refused: the record must never load
        journal.append("journal_things", to_ipc(rows(["refused"])))
    assert journal.append("journal_things", to_ipc(rows(["b"]))) == 3
    journal.close()
    assert len(journal.segments()) == 2  # b went to a new segment
    back = list(Journal(tmp_path / "j").replay())
    assert [(s, from_ipc(p).column("name").to_pylist()) for s, _n, p in back] == [
        (1, ["a"]), (3, ["b"])]


def test_a_partial_record_left_by_a_failed_append_stops_only_its_segment(tmp_path):
    journal = Journal(tmp_path / "j")
    journal.append("journal_things", to_ipc(rows(["a"])))
    [(_first, path)] = journal.segments()
    journal._abandon()  # as after a failed append whose cut failed too
    with path.open("ab") as f:
        f.write(b"SGJ1\x02\x00")
    journal.next_seq = 3
    journal.append("journal_things", to_ipc(rows(["b"])))
    journal.close()
    back = list(Journal(tmp_path / "j").replay())
    assert [(s, from_ipc(p).column("name").to_pylist()) for s, _n, p in back] == [
        (1, ["a"]), (3, ["b"])]


def test_records_of_tables_no_longer_registered_are_passed_over(tmp_path):
    store = open_store(tmp_path, load_interval_s=60)
    store.insert(SPEC, rows(["kept"]))
    store.journal.append("a_table_long_gone", to_ipc(rows(["orphan"])))
    crash(store)
    again = open_store(tmp_path, load_interval_s=60)
    assert names_in(again.inner) == ["kept"]
    assert again.inner.journal_loaded() == 2  # not read again at every start
    again.close()


def test_the_lag_is_in_the_metrics(tmp_path):
    from spyglass.kernel import selfmetrics

    store = open_store(tmp_path, load_interval_s=60)
    try:
        loads = selfmetrics.JOURNAL_LOAD_SECONDS._sum.get()
        store.insert(SPEC, rows(["a", "b", "c"]))
        assert selfmetrics.JOURNAL_WAITING_ROWS._value.get() == 3
        store.settle()
        assert selfmetrics.JOURNAL_WAITING_ROWS._value.get() == 0
        assert selfmetrics.JOURNAL_LOAD_SECONDS._sum.get() > loads
    finally:
        store.close()


def test_no_append_before_what_was_left_is_loaded(tmp_path):
    store = open_store(tmp_path, load_interval_s=60)
    store.insert(SPEC, rows(["left"]))
    crash(store)
    again = JournaledStore(DuckDBStore(tmp_path / "t.duckdb"), tmp_path / "t.duckdb.journal")
    again.ensure_table(SPEC)
    with pytest.raises(RuntimeError, match="recover"):
        again.insert(SPEC, rows(["too early"]))
    again.recover()
    again.insert(SPEC, rows(["after"]))
    try:
        assert names_in(again) == ["after", "left"]
    finally:
        again.close()


def test_a_clean_stop_leaves_an_empty_journal(tmp_path):
    store = open_store(tmp_path, load_interval_s=60)
    store.insert(SPEC, rows(["a"]))
    store.close()
    assert Journal(tmp_path / "t.duckdb.journal").segments() == []
    plain = JournaledStore(DuckDBStore(tmp_path / "t.duckdb"), tmp_path / "t.duckdb.journal")
    plain.ensure_table(SPEC)
    plain.insert(SPEC, rows(["b"]))  # nothing to recover: appends at once ...
    crash(plain)
    again = open_store(tmp_path, load_interval_s=60)
    try:  # ... numbered after "a", so a crash does not take it for loaded
        assert names_in(again) == ["a", "b"]
    finally:
        again.close()
