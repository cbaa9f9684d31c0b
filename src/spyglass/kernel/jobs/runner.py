"""A small scheduler: registered jobs run at their interval on the leader, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from spyglass.kernel import selfmetrics
from spyglass.kernel.jobs.leader import Leadership

log = structlog.get_logger(__name__)


@dataclass
class Job:
    name: str
    interval_s: float
    func: Callable[[], object]
    next_run: float = field(default=0.0)


class JobRunner:
    def __init__(self, leadership: Leadership, tick_s: float = 1.0) -> None:
        self._leadership = leadership
        self._tick = tick_s
        self._jobs: dict[str, Job] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.is_leader = False

    def add(self, name: str, interval_s: float, func: Callable[[], object]) -> None:
        self._jobs[name] = Job(name, interval_s, func)

    def run_now(self, name: str) -> object:
        """Run one job in the caller's thread (CLI, tests)."""
        return self._execute(self._jobs[name])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="spyglass-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._leadership.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.is_leader = self._leadership.try_acquire()
            except Exception as exc:  # noqa: BLE001 -- keep trying; the database may come back
                log.warning("leader_election_failed", error=repr(exc))
                self.is_leader = False
            if self.is_leader:
                now = time.monotonic()
                for job in list(self._jobs.values()):
                    if now >= job.next_run and not self._stop.is_set():
                        self._execute(job)
                        job.next_run = time.monotonic() + job.interval_s
            self._stop.wait(self._tick)

    def _execute(self, job: Job) -> object:
        started = time.perf_counter()
        try:
            result = job.func()
        except Exception as exc:  # noqa: BLE001 -- one failing job must not stop the others
            selfmetrics.JOB_RUNS.labels(job.name, "error").inc()
            log.error("job_failed", job=job.name, error=repr(exc))
            return None
        selfmetrics.JOB_RUNS.labels(job.name, "ok").inc()
        log.info("job_done", job=job.name, seconds=round(time.perf_counter() - started, 3))
        return result
