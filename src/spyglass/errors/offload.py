"""Ingest workers: the CPU-bound half of Sentry ingest in other processes.

One Python process computes on one core at a time. Decoding, parsing, normalizing, scrubbing
and grouping an event cost most of its CPU and need no state, so the server hands them to a
few worker processes and keeps what needs state and storage: authentication, quotas, issue
assignment, duplicates, attachments and the writer. A request's body goes to a worker over a
socket pair and comes back as rows (:class:`spyglass.errors.items.ItemsResult`); the server
answers the SDK only after those rows are committed, as before.

Each worker is ``python -m spyglass.errors.worker FD``: it imports the item-processing
modules only (no storage code, ~30 MB), reads length-prefixed pickled tasks from its socket,
and answers in order. A project's rules travel with the first task after they change. When a
worker dies its requests are processed in the server process and it is started again, so no
acknowledged event depends on a worker; one that hangs is killed by a watchdog.

Pickle is safe here: both ends are this program, over a socket pair nobody else holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import pickle
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import structlog

from spyglass.errors.items import ItemsResult, RuleTexts

log = structlog.get_logger(__name__)

HEADER = struct.Struct("!I")
#: A request a worker has not answered after this long is taken as hanging it.
TASK_TIMEOUT_S = 30.0
#: A worker that dies this soon after starting, before answering anything, is started again
#: only after the backoff (it cannot start: a broken installation, not a bad request).
CRASH_WINDOW_S = 5.0
CRASH_BACKOFF_S = 30.0
#: A task's raw body is at most Sentry's 20 MB compressed limit; replies are decoded bodies
#: turned into rows, bounded by the 100 MB envelope limit.
MAX_FRAME = 256 * 1024 * 1024


class WorkerLost(Exception):
    """The worker died or was stopped before answering; process the request here instead."""


class WorkerTimeout(Exception):
    """The worker did not answer in time and was stopped; the request may be what hangs it,
    so it is not processed again here (the client is told to retry later)."""


@dataclass
class Task:
    project_id: int
    version: int
    rules: RuleTexts | None
    raw: bytes
    encoding: str
    store: bool
    limit: int
    received: dt.datetime


@dataclass
class Reply:
    """What a worker made of a request: an HTTP error, or the envelope's rows."""

    status: int
    message: str = ""
    headers: dict[str, Any] | None = None
    items: ItemsResult | None = None


def auto_count() -> int:
    """One worker per core but one, and at least one: the server process keeps a core's worth
    of work (HTTP, issue assignment, the writer). On 2 cores one worker gave the same
    throughput as two with less CPU per event and 45 MB less memory (docs/benchmarks.md)."""
    return max(1, (os.cpu_count() or 1) - 1)


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        #: task id → (its reply, when it was sent), in sending order (replies come in order).
        self.pending: dict[int, tuple[asyncio.Future[Reply], float]] = {}
        #: project id → rules version this worker has.
        self.versions: dict[int, int] = {}
        #: The event loop's clock when it was last started; not before this, start it again.
        self.started_at = 0.0
        self.retry_at = 0.0
        #: Replies since it was last started.
        self.answered = 0
        #: The command line, without the socket's descriptor (tests replace it).
        self.command = [sys.executable, "-m", "spyglass.errors.worker"]

    @property
    def alive(self) -> bool:
        return self.writer is not None and self.proc is not None and self.proc.poll() is None

    async def start(self) -> None:
        parent, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 -- a fork+exec, once per worker
                [*self.command, str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            child.close()
        self.started_at = asyncio.get_running_loop().time()
        self.answered = 0
        reader, self.writer = await asyncio.open_connection(sock=parent, limit=MAX_FRAME)
        self.versions = {}
        self.reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await reader.readexactly(HEADER.size)
                frame = await reader.readexactly(HEADER.unpack(head)[0])
                task_id, reply = pickle.loads(frame)
                self.answered += 1
                future, _sent = self.pending.pop(task_id, (None, 0.0))
                if future is not None and not future.done():
                    future.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except Exception as exc:  # noqa: BLE001 -- an unreadable reply: drop this worker
            log.error("ingest_worker_reply_unreadable", worker=self.index, error=repr(exc))
        finally:
            self._lost()

    def _lost(self) -> None:
        pending, self.pending = self.pending, {}
        for future, _sent in pending.values():
            if not future.done():
                future.set_exception(WorkerLost(f"ingest worker {self.index} stopped"))
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def send(self, task_id: int, task: Task) -> asyncio.Future[Reply]:
        assert self.writer is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self.pending[task_id] = (future, loop.time())
        frame = pickle.dumps((task_id, task), protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(HEADER.pack(len(frame)) + frame)
        return future

    def overdue(self, now: float, timeout: float) -> asyncio.Future[Reply] | None:
        """The oldest unanswered task's reply when it has waited more than ``timeout``."""
        for future, sent in self.pending.values():
            return future if now - sent > timeout else None
        return None

    def kill(self) -> None:
        """Stop a hung worker at once; its other tasks fail with WorkerLost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._lost()

    def stop(self) -> None:
        if self.reader_task is not None:
            self.reader_task.cancel()
        self._lost()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class IngestWorkers:
    """A pool of ingest worker processes, used from the server's event loop."""

    def __init__(self, count: int, timeout: float = TASK_TIMEOUT_S) -> None:
        self.count = count
        self.timeout = timeout
        self._workers = [_Worker(i) for i in range(count)]
        self._watchdog: asyncio.TimerHandle | None = None
        self._ids = itertools.count()
        self._lock: asyncio.Lock | None = None
        self._closed = False
        #: Requests the workers answered.
        self.completed = 0

    async def run(self, task: Task) -> Reply:
        """The worker's reply to ``task``; raises :class:`WorkerLost` when no worker could
        answer (the caller then processes the request itself)."""
        worker = await self._pick()
        if worker.versions.get(task.project_id) == task.version:
            task.rules = None  # the worker has these rules already
        else:
            worker.versions[task.project_id] = task.version
        future = worker.send(next(self._ids), task)
        if worker.writer is not None and worker.writer.transport.get_write_buffer_size() > 1 << 20:
            await worker.writer.drain()
        reply = await future
        self.completed += 1
        return reply

    async def _pick(self) -> _Worker:
        if self._closed:
            raise WorkerLost("ingest workers are stopped")
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._watch()
        now = asyncio.get_running_loop().time()
        if any(not w.alive and now >= w.retry_at for w in self._workers):
            await self._revive(now)
        alive = [w for w in self._workers if w.alive]
        if not alive:
            raise WorkerLost("no ingest worker is running")
        return min(alive, key=lambda w: len(w.pending))

    async def _revive(self, now: float) -> None:
        """Start the workers that are not running (the first time, or after they died),
        except one that died within CRASH_WINDOW_S of starting without answering: it waits
        CRASH_BACKOFF_S, so a worker that cannot start does not cost a process per request."""
        assert self._lock is not None
        async with self._lock:  # (re)start dead workers once, not once per request
            for w in self._workers:
                if w.alive or self._closed or now < w.retry_at:
                    continue
                if w.proc is not None:
                    exit_code = w.proc.poll()
                    w.stop()
                    if w.answered == 0 and now - w.started_at < CRASH_WINDOW_S:
                        w.retry_at = now + CRASH_BACKOFF_S
                        log.error("ingest_worker_crashed_at_start", worker=w.index,
                                  exit_code=exit_code, retry_in_s=CRASH_BACKOFF_S)
                        continue
                    log.warning("ingest_worker_restarted", worker=w.index, exit_code=exit_code)
                    from spyglass.kernel import selfmetrics  # (not in workers)

                    selfmetrics.INGEST_WORKER_RESTARTS.inc()
                await w.start()

    def _watch(self) -> None:
        """Every few seconds, stop a worker whose oldest task has waited past the timeout (a
        request that hangs it must not hold up the ones queued behind it)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for worker in self._workers:
            overdue = worker.overdue(now, self.timeout)
            if overdue is not None:
                log.error("ingest_worker_timeout", worker=worker.index, timeout_s=self.timeout)
                overdue.set_exception(WorkerTimeout(
                    f"processing took longer than {self.timeout:g} s"))
                worker.kill()
        if not self._closed:
            self._watchdog = loop.call_later(min(5.0, self.timeout / 4), self._watch)

    def stop(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for worker in self._workers:
            with contextlib.suppress(Exception):
                worker.stop()
