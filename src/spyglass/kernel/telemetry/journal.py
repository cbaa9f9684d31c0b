"""The ingest journal: durable appends now, columnar loads in bulk a moment later.

DuckDB's cost per insert is mostly fixed (parsing, planning, one commit with its WAL sync and
per-column work: ~2 ms for the 22 columns of ``events``), so the small batches of a group
commit every 10 ms spent most of their time there, on the path every request waits for. The
journal takes that path instead: :meth:`JournaledStore.insert` appends the batch to a segment
file as one checksummed record and fsyncs it (durable when it returns, as the store
interface promises), and a loader thread inserts what accumulated into DuckDB in one
transaction every ``load_interval_s`` or ``load_rows`` rows.

Nothing acknowledged is ever missing from a read: every query and statement first loads what
is waiting (:meth:`JournaledStore.settle`), so a read after an acknowledgement sees its rows,
and an ``UPDATE``/``DELETE`` applies to every row journaled before it.

Crash safety: the loader records the sequence number of the last record it loaded in the
``spyglass_journal`` table, in the same DuckDB transaction as the rows; at start
(:meth:`JournaledStore.recover`) records after it are loaded again, so each record is loaded
exactly once. A record torn by a crash (short, or failing its CRC) was never acknowledged:
the segment is cut before it. Segments whose records are all loaded are deleted.

Record layout, little-endian: magic ``SGJ1``, sequence (u64), table name length (u16),
payload length (u32), CRC-32 (u32) of the sequence, the lengths, the name and the payload,
then the table name (UTF-8) and the payload (an Arrow IPC stream of the rows).
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import structlog

from spyglass.kernel import selfmetrics
from spyglass.kernel.telemetry.schema import TableSpec
from spyglass.kernel.telemetry.store import TelemetryStore

log = structlog.get_logger(__name__)

MAGIC = b"SGJ1"
HEAD = struct.Struct("<4sQHII")
#: The checksummed part of the head: sequence, name length, payload length.
FIELDS = struct.Struct("<QHI")
SEGMENT_BYTES = 64 * 2**20
SUFFIX = ".journal"


class Journal:
    """Append-only, fsync'd records in numbered segment files (one writer at a time)."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._file: Any = None
        self._size = 0
        self.next_seq = 1

    def segments(self) -> list[tuple[int, Path]]:
        """(first sequence number, path), oldest first."""
        out = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                out.append((int(path.name[: -len(SUFFIX)]), path))
            except ValueError:
                continue
        return sorted(out)

    def replay(self) -> Iterator[tuple[int, str, bytes]]:
        """Every whole record, oldest first; a torn tail is cut off its segment. Call once,
        before the first append."""
        for _first, path in self.segments():
            data = path.read_bytes()
            at = 0
            while at < len(data):
                record = _parse(data, at)
                if record is None:
                    log.warning("journal_torn_record_dropped", segment=path.name, offset=at,
                                bytes=len(data) - at)
                    with path.open("r+b") as f:
                        f.truncate(at)
                        os.fsync(f.fileno())
                    break
                seq, name, payload, at = record
                self.next_seq = max(self.next_seq, seq + 1)
                yield seq, name, payload

    def append(self, name: str, payload: bytes | pa.Buffer) -> int:
        """Write one record and fsync it; returns its sequence number."""
        if self._file is None or self._size >= self.segment_bytes:
            self._rotate()
        seq = self.next_seq
        encoded = name.encode()
        fields = FIELDS.pack(seq, len(encoded), len(payload))
        crc = zlib.crc32(payload, zlib.crc32(fields + encoded))
        try:
            self._file.write(MAGIC + fields + struct.pack("<I", crc) + encoded)
            self._file.write(payload)
            self._file.flush()
            os.fdatasync(self._file.fileno())
        except BaseException:
            # The record may be in the file, whole or in part (a full disk, a failed sync),
            # and its request will be refused: cut it off. Should that fail too, nothing may
            # follow it in this file (replay stops at a partial record): the next append
            # starts a new segment, and no later record shares its number.
            self.next_seq = seq + 1
            try:
                self._file.truncate(self._size)
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError:
                pass
            self._abandon()
            raise
        self._size += HEAD.size + len(encoded) + len(payload)
        self.next_seq = seq + 1
        return seq

    def release(self, loaded: int) -> None:
        """Delete the segments whose records are all loaded (at most ``loaded``): those the
        next segment starts right after, except the one being written."""
        segments = self.segments()
        current = Path(self._file.name) if self._file is not None else None
        for (_first, path), (next_first, _next) in pairwise(segments):
            if path != current and next_first <= loaded + 1:
                path.unlink(missing_ok=True)

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        path = self.directory / f"{self.next_seq:020d}{SUFFIX}"
        self._file = path.open("ab")
        self._size = self._file.tell()
        # The new file's name must be durable too, or a crash could lose the segment.
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _abandon(self) -> None:
        file, self._file = self._file, None
        try:
            file.close()
        except OSError:
            pass

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _parse(data: bytes, at: int) -> tuple[int, str, bytes, int] | None:
    if len(data) - at < HEAD.size:
        return None
    magic, seq, name_len, payload_len, crc = HEAD.unpack_from(data, at)
    end = at + HEAD.size + name_len + payload_len
    if magic != MAGIC or end > len(data):
        return None
    encoded = data[at + HEAD.size:at + HEAD.size + name_len]
    payload = data[at + HEAD.size + name_len:end]
    fields = data[at + len(MAGIC):at + len(MAGIC) + FIELDS.size]
    if zlib.crc32(payload, zlib.crc32(fields + encoded)) != crc:
        return None
    try:
        name = encoded.decode()
    except UnicodeDecodeError:
        return None
    return seq, name, payload, end


def to_ipc(data: pa.Table) -> pa.Buffer:
    """The rows as an Arrow IPC stream (a buffer: written to the journal without a copy)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return sink.getvalue()


def from_ipc(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


class JournaledStore(TelemetryStore):
    """A DuckDB store behind the ingest journal (see the module's docstring).

    ``inner`` must offer ``insert_all(batches, journal_seq)`` and ``journal_loaded()``
    (:class:`spyglass.kernel.telemetry.duckdb.DuckDBStore` does). With ``enabled`` false,
    inserts go straight to ``inner`` and only :meth:`recover` reads the journal, to load
    what an earlier run left in it.
    """

    def __init__(self, inner: Any, directory: Path, enabled: bool = True,
                 load_interval_s: float = 0.2, load_rows: int = 2000,
                 max_waiting_bytes: int = 64 * 2**20) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.enabled = enabled
        self.journal = Journal(directory)
        self.load_interval_s = load_interval_s
        self.load_rows = load_rows
        self.max_waiting_bytes = max_waiting_bytes
        self._specs: dict[str, TableSpec] = {}
        #: Journaled batches not loaded yet, in sequence order: (seq, spec, rows).
        self._waiting: list[tuple[int, TableSpec, pa.Table]] = []
        self._waiting_rows = 0
        self._waiting_bytes = 0
        self._oldest = 0.0
        self._cond = threading.Condition()
        self._append_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._recovered = False
        self._stopping = False
        #: Why the last load failed ("" once one succeeds), for /readyz.
        self.last_error = ""
        self._loader: threading.Thread | None = None

    # -- the store interface ---------------------------------------------------------------

    def ensure_table(self, spec: TableSpec) -> None:
        self._specs[spec.name] = spec
        self.inner.ensure_table(spec)

    def recover(self) -> None:
        """Load the journal's records that are not in the tables yet (after a crash), then
        delete what is loaded. Runs once, after every table is ensured."""
        if self._recovered:
            return
        self._recovered = True
        loaded = self.inner.journal_loaded()
        batches: list[tuple[TableSpec, pa.Table]] = []
        last = loaded
        for seq, name, payload in self.journal.replay():
            if seq <= loaded:
                continue
            last = seq
            spec = self._specs.get(name)
            if spec is None:  # a table no feature registers any more: nothing to load it into
                log.error("journal_record_for_unknown_table", table=name, seq=seq)
                continue
            batches.append((spec, from_ipc(payload)))
        if last > loaded:
            self.inner.insert_all(_grouped(batches), last)
            log.warning("journal_recovered", records=len(batches),
                        rows=sum(t.num_rows for _s, t in batches))
        self.journal.next_seq = max(self.journal.next_seq, loaded + 1)
        self.journal.release(max(loaded, last))

    def insert(self, spec: TableSpec, data: pa.Table) -> None:
        if not self.enabled:
            self.inner.insert(spec, data)
            return
        if not self._recovered:
            # Appending before what an earlier run left is loaded would reuse its sequence
            # numbers; with nothing left, there is nothing to wait for.
            if self.journal.segments():
                raise RuntimeError("the ingest journal holds records: recover() first")
            # (Numbers go on after the last one loaded, which a clean stop leaves behind.)
            self.journal.next_seq = max(self.journal.next_seq, self.inner.journal_loaded() + 1)
            self._recovered = True
        if self._waiting_bytes > self.max_waiting_bytes:
            # The loader fell behind (a long checkpoint, a failing disk): load here, which
            # holds the writer back (raises if it cannot, and the writer answers 503).
            self._load()
        payload = to_ipc(data)
        with self._append_lock:
            seq = self.journal.append(spec.name, payload)
            with self._cond:
                if not self._waiting:
                    self._oldest = time.monotonic()
                self._waiting.append((seq, spec, data))
                self._waiting_rows += data.num_rows
                self._waiting_bytes += data.nbytes
                selfmetrics.JOURNAL_WAITING_ROWS.set(self._waiting_rows)
                if self._waiting_rows >= self.load_rows:
                    self._cond.notify_all()
        if self._loader is None:
            self._start_loader()

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        self.settle()
        return self.inner.query(sql, params)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.settle()
        self.inner.execute(sql, params)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._loader is not None:
            self._loader.join(30)
        try:
            self._load()
        except Exception as exc:  # noqa: BLE001 -- still journaled: loaded at the next start
            log.error("journal_load_failed_at_close", error=repr(exc))
        self.journal.close()
        if self._recovered and not self._waiting:
            # Everything is in the tables: a clean stop leaves an empty journal.
            for _first, path in self.journal.segments():
                path.unlink(missing_ok=True)
        self.inner.close()

    def ping(self) -> None:
        self.inner.ping()  # (a liveness probe must not load the journal)

    def journal_status(self) -> dict[str, Any]:
        """What /readyz reports: rows and bytes waiting, the limit, the last load error."""
        return {"waiting_rows": self._waiting_rows, "waiting_bytes": self._waiting_bytes,
                "limit_bytes": self.max_waiting_bytes, "error": self.last_error}

    def time_bucket(self, column: str, seconds: int) -> str:
        return self.inner.time_bucket(column, seconds)

    def quantile(self, column: str, q: float) -> str:
        return self.inner.quantile(column, q)

    def uniq(self, column: str) -> str:
        return self.inner.uniq(column)

    # -- loading ----------------------------------------------------------------------------

    @property
    def waiting_rows(self) -> int:
        return self._waiting_rows

    def settle(self) -> None:
        """Load everything journaled so far, so that a read sees every acknowledged row. A
        failure is logged and the read goes on (the rows stay journaled, the loader retries).
        A load under way (the loader's) is waited for: its rows are not in the tables yet."""
        if not self._waiting and not self._load_lock.locked():
            return
        try:
            self._load()
        except Exception as exc:  # noqa: BLE001
            log.error("journal_load_failed", error=repr(exc))

    def _load(self) -> None:
        with self._load_lock:
            with self._cond:
                taken, self._waiting = self._waiting, []
                rows, size = self._waiting_rows, self._waiting_bytes
                self._waiting_rows = self._waiting_bytes = 0
            if not taken:
                return
            started = time.perf_counter()
            try:
                self.inner.insert_all(_grouped([(s, t) for _q, s, t in taken]), taken[-1][0])
            except BaseException as exc:
                with self._cond:  # back in front, in order, for the next attempt
                    self._waiting = taken + self._waiting
                    self._waiting_rows += rows
                    self._waiting_bytes += size
                self.last_error = repr(exc)[:300]
                raise
            self.last_error = ""
            selfmetrics.JOURNAL_LOAD_SECONDS.observe(time.perf_counter() - started)
            selfmetrics.JOURNAL_WAITING_ROWS.set(self._waiting_rows)
            with self._append_lock:  # (an append may be starting a new segment)
                self.journal.release(taken[-1][0])

    def _start_loader(self) -> None:
        with self._cond:
            if self._loader is None:
                self._loader = threading.Thread(target=self._run, name="spyglass-journal-loader",
                                                daemon=True)
                self._loader.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._waiting and (
                            self._waiting_rows >= self.load_rows
                            or time.monotonic() - self._oldest >= self.load_interval_s):
                        break
                    wait = (self.load_interval_s - (time.monotonic() - self._oldest)
                            if self._waiting else None)
                    self._cond.wait(wait)
                if self._stopping:
                    return
            try:
                self._load()
            except Exception as exc:  # noqa: BLE001 -- journaled still; try again shortly
                log.error("journal_load_failed", error=repr(exc))
                time.sleep(1.0)


def _grouped(batches: list[tuple[TableSpec, pa.Table]]) -> list[tuple[TableSpec, pa.Table]]:
    """One contiguous table per table name and set of columns, in first-seen order."""
    by_name: dict[tuple[str, pa.Schema], tuple[TableSpec, list[pa.Table]]] = {}
    for spec, data in batches:
        by_name.setdefault((spec.name, data.schema), (spec, []))[1].append(data)
    return [(spec, pa.concat_tables(parts, promote_options="none").combine_chunks()
             if len(parts) > 1 else parts[0])
            for spec, parts in by_name.values()]
