"""The batching writer: group commit for every ingest path.

Requests hand rows to :meth:`BatchingWriter.write` and wait. A single flusher thread takes
everything waiting, commits it table by table in one insert each, and only then releases
the requests, so an acknowledged request is a durable one. Memory is bounded: past
``max_pending_rows`` a write is refused with :class:`Overloaded`, which endpoints turn into
429/503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import structlog

from spyglass.kernel import selfmetrics
from spyglass.kernel.telemetry import TableSpec, TelemetryStore

log = structlog.get_logger(__name__)


class Overloaded(Exception):
    """The writer's queue is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"ingest queue full, retry after {retry_after}s")
        self.retry_after = retry_after


class WriteFailed(Exception):
    """The store refused a batch; nothing of it was acknowledged, the client should retry."""


class WriterStopped(Exception):
    """The writer is shutting down and takes no more rows."""


class MalformedRows(ValueError):
    """Rows that do not fit their table's schema; only their own request fails."""


class _Pending:
    """One request's rows and how its waiter hears of their fate.

    ``submit`` callers get a ``concurrent.futures.Future``; ``write`` callers (on an event
    loop) an asyncio future that the flusher settles through ``call_soon_threadsafe``, once
    per flushed table and loop rather than once per request, and without the locks a
    concurrent future and its asyncio wrapper cost on every request.
    """

    __slots__ = ("batch", "done", "loop", "waiter")

    def __init__(self, batch: pa.Table | list[dict[str, Any]],
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        #: Arrow tables are kept as they are; lists of dicts are converted by the flusher, all
        #: of a flush at once (one conversion is much cheaper than one per request).
        self.batch = batch
        self.loop = loop
        self.done: concurrent.futures.Future[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        if loop is None:
            self.done = concurrent.futures.Future()
        else:
            self.waiter = loop.create_future()


def _settle(outcomes: list[tuple[_Pending, BaseException | None]]) -> None:
    """Settle the asyncio waiters of one loop (runs on that loop)."""
    for p, exc in outcomes:
        waiter = p.waiter
        if waiter is None or waiter.done():  # cancelled meanwhile: nobody is listening
            continue
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)


def _release(outcomes: list[tuple[_Pending, BaseException | None]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, BaseException | None]]] = {}
    for p, exc in outcomes:
        if p.done is not None:
            if exc is None:
                p.done.set_result(None)
            else:
                p.done.set_exception(exc)
        elif p.loop is not None:
            by_loop.setdefault(p.loop, []).append((p, exc))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # the loop is closed: its requests are gone
            pass


class BatchingWriter:
    def __init__(
        self,
        store: TelemetryStore,
        batch_rows: int = 10_000,
        interval_ms: int = 50,
        max_pending_rows: int = 200_000,
    ) -> None:
        self.store = store
        self.batch_rows = batch_rows
        self.interval = interval_ms / 1000
        self.max_pending_rows = max_pending_rows
        self._queues: dict[str, list[_Pending]] = defaultdict(list)
        self._specs: dict[str, TableSpec] = {}
        self._pending_rows = 0
        self._oldest: float | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="spyglass-writer", daemon=True)
        self._last_flush_seconds = 0.0
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Flush what is waiting, then stop; later writes raise :class:`WriterStopped`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._started:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    @property
    def fill_ratio(self) -> float:
        return self._pending_rows / self.max_pending_rows

    # -- writing ---------------------------------------------------------------------------

    def submit(self, spec: TableSpec, rows: Sequence[dict[str, Any]] | pa.Table) -> concurrent.futures.Future[None]:
        """Queue rows; the returned future completes once they are committed.

        A malformed row fails its own request (``MalformedRows``), never the batch it joined.
        """
        pending = self._enqueue(spec, rows, None)
        assert pending.done is not None
        return pending.done

    async def write(self, spec: TableSpec, rows: Sequence[dict[str, Any]] | pa.Table) -> None:
        """Queue rows and wait until they are durable."""
        pending = self._enqueue(spec, rows, asyncio.get_running_loop())
        assert pending.waiter is not None
        await pending.waiter

    def write_sync(self, spec: TableSpec, rows: Sequence[dict[str, Any]] | pa.Table) -> None:
        self.submit(spec, rows).result()

    def _enqueue(self, spec: TableSpec, rows: Sequence[dict[str, Any]] | pa.Table,
                 loop: asyncio.AbstractEventLoop | None) -> _Pending:
        batch: pa.Table | list[dict[str, Any]] = (
            _cast(spec, rows) if isinstance(rows, pa.Table) else list(rows))
        n = _count(batch)
        pending = _Pending(batch, loop)
        if n == 0:
            if pending.done is not None:
                pending.done.set_result(None)
            else:
                pending.waiter.set_result(None)  # type: ignore[union-attr]
            return pending
        with self._cond:
            if self._stopping:
                raise WriterStopped("the writer is stopping")
            if self._pending_rows + n > self.max_pending_rows:
                selfmetrics.INGEST_REJECTED.labels(spec.name, "overloaded").inc(n)
                raise Overloaded(retry_after=max(1, round(self._last_flush_seconds * 4)))
            self._specs[spec.name] = spec
            self._queues[spec.name].append(pending)
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._pending_rows += n
            selfmetrics.QUEUE_DEPTH.set(self._pending_rows)
            if self._pending_rows >= self.batch_rows:
                self._cond.notify_all()
        return pending

    # -- the flusher -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                # The interval counts from the oldest waiting row, so rows that arrived during
                # the previous flush do not wait a whole extra interval.
                deadline = (self._oldest or time.monotonic()) + self.interval
                while not self._stopping and self._pending_rows < self.batch_rows:
                    if self._oldest is None:
                        deadline = time.monotonic() + self.interval
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                taken = self._queues
                self._queues = defaultdict(list)
                self._oldest = None
                stopping = self._stopping
            if taken:
                self._flush(taken)
            elif stopping:
                return

    def _flush(self, taken: dict[str, list[_Pending]]) -> None:
        started = time.perf_counter()
        for table, items in taken.items():
            spec = self._specs[table]
            rows = sum(_count(p.batch) for p in items)
            good, bad = _convert(spec, items)
            _release([(p, MalformedRows(f"rows do not fit {table}: {exc}")) for p, exc in bad])
            error: BaseException | None = None
            try:
                if good:
                    # One contiguous chunk: both engines insert many small chunks 3-4x slower.
                    combined = pa.concat_tables(
                        [t for _p, t in good], promote_options="none").combine_chunks()
                    t0 = time.perf_counter()
                    self.store.insert(spec, combined)
                    selfmetrics.child(selfmetrics.FLUSH_SECONDS, table).observe(
                        time.perf_counter() - t0)
                    selfmetrics.child(selfmetrics.ROWS_WRITTEN, table).inc(combined.num_rows)
            except BaseException as exc:  # noqa: BLE001 -- every waiter must hear of it
                error = exc
                log.error("flush_failed", table=table, rows=rows, error=repr(exc))
            with self._cond:
                self._pending_rows -= rows
                selfmetrics.QUEUE_DEPTH.set(self._pending_rows)
            _release([(p, None if error is None else WriteFailed(f"storage error: {error}"))
                      for p, _t in good])
        self._last_flush_seconds = time.perf_counter() - started


def _count(batch: pa.Table | list[dict[str, Any]]) -> int:
    return batch.num_rows if isinstance(batch, pa.Table) else len(batch)


def _convert(spec: TableSpec, items: list[_Pending],
             ) -> tuple[list[tuple[_Pending, pa.Table]], list[tuple[_Pending, Exception]]]:
    """Arrow tables for the pending requests: one conversion for all their dict rows, and
    request by request only when that fails, to find the malformed ones."""
    schema = spec.arrow_schema
    dicts = [p for p in items if not isinstance(p.batch, pa.Table)]
    good = [(p, p.batch) for p in items if isinstance(p.batch, pa.Table)]
    bad: list[tuple[_Pending, Exception]] = []
    if dicts:
        try:
            merged = pa.Table.from_pylist([r for p in dicts for r in p.batch], schema=schema)
            good.append((dicts[0], merged))
            good.extend((p, merged.slice(0, 0)) for p in dicts[1:])
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            for p in dicts:
                try:
                    good.append((p, pa.Table.from_pylist(p.batch, schema=schema)))
                except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                    bad.append((p, exc))
    return good, bad


def _cast(spec: TableSpec, rows: pa.Table) -> pa.Table:
    schema = spec.arrow_schema
    return rows if rows.schema == schema else rows.select(schema.names).cast(schema)
