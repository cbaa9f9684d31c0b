"""Batching writer benchmark: sustained ingest rate and commit latency, DuckDB vs chDB.

Producers play the part of ingest requests: each request carries 1-50 error-event rows (most
carry one, as SDKs send one event per envelope) built by the real ``event_row`` from a few
hundred varied Sentry events whose stored JSON is about 1-2 KB. Two producer shapes:

- ``asyncio``: one event loop with many requests in flight, as a uvicorn worker runs them;
  rows are converted to Arrow on the loop thread, as in the real endpoint.
- ``threads``: a few threads, each sending a request and waiting for its commit.

Each producer sends its next request as soon as the previous one is committed (closed loop),
so the rate is the most this writer sustains at that concurrency. Latency is per request,
from ``submit`` until its future is done (the moment the flusher releases it). Every
configuration is repeated (stores interleaved, so both see the same machine noise) and the
medians are printed as a markdown table, followed by the direct ``store.insert`` rate of one
big batch for reference.

Run: ``.venv/bin/python benchmarks/writer_benchmark.py [--seconds 2.5] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.progress import Progress

from spyglass.errors.ingest import event_row
from spyglass.errors.schema import EVENTS
from spyglass.kernel import selfmetrics
from spyglass.kernel.ingest.writer import BatchingWriter, Overloaded
from spyglass.kernel.telemetry import TelemetryStore, open_telemetry_store

STORES = ("duckdb", "chdb")
PROJECTS = (1, 2, 3, 7, 42)


# -- realistic events -----------------------------------------------------------------------

EXCEPTIONS = [
    ("ValueError", "invalid literal for int() with base 10: '{w}'"),
    ("KeyError", "'{w}'"),
    ("TypeError", "unsupported operand type(s) for +: 'int' and '{w}'"),
    ("ZeroDivisionError", "division by zero"),
    ("AttributeError", "'NoneType' object has no attribute '{w}'"),
    ("IntegrityError", 'duplicate key value violates unique constraint "{w}_pkey"'),
    ("OperationalError", "could not connect to server: Connection refused ({w})"),
    ("TimeoutError", "timed out after {n} ms waiting for {w}"),
    ("ConnectionResetError", "[Errno 104] Connection reset by peer"),
    ("HTTPError", "{n} Server Error: Internal Server Error for url: https://api.example.com/{w}"),
    ("PermissionError", "[Errno 13] Permission denied: '/var/lib/app/{w}.lock'"),
    ("RuntimeError", "dictionary changed size during iteration"),
    ("TypeError", "Cannot read properties of undefined (reading '{w}')"),
    ("ReferenceError", "{w} is not defined"),
    ("SyntaxError", "Unexpected token '<' in JSON at position {n}"),
    ("ChunkLoadError", "Loading chunk {n} failed. (error: https://cdn.example.com/{w}.js)"),
]
WORDS = ["user", "order", "invoice", "cart", "session", "token", "price", "sku", "tenant",
         "payment", "shipment", "profile", "avatar", "webhook", "report", "export"]
VERBS = ["get", "load", "save", "handle", "render"]
PLATFORMS = [("python", "py"), ("javascript", "js"), ("node", "js"), ("ruby", "rb"), ("go", "go")]
BROWSERS = ["Chrome 131", "Firefox 133", "Safari 18.1", "Edge 131", "Mobile Safari 17.6"]
OSES = ["Windows 11", "macOS 15.1", "Ubuntu 24.04", "iOS 18.1", "Android 15"]
ENVIRONMENTS = ["production", "production", "production", "staging", "development"]
TRANSACTIONS = ["/api/orders/{id}", "/checkout", "/api/users/{id}/profile", "/search",
                "GET /api/invoices", "POST /webhooks/stripe", "worker.tasks.send_email"]


def make_event(rnd: random.Random, i: int) -> dict[str, Any]:
    """One Sentry error event, shaped like what the official SDKs send."""
    exc_type, template = rnd.choice(EXCEPTIONS)
    word = rnd.choice(WORDS)
    platform, ext = rnd.choice(PLATFORMS)
    frames = [
        {
            "filename": f"app/{rnd.choice(WORDS)}/{rnd.choice(WORDS)}.{ext}",
            "function": f"{rnd.choice(VERBS)}_{rnd.choice(WORDS)}",
            "lineno": rnd.randint(1, 900),
            "in_app": rnd.random() < 0.7,
            "context_line": f"    result = {rnd.choice(WORDS)}.{rnd.choice(WORDS)}(**kwargs)",
            "vars": {"id": str(rnd.randint(1, 10**6)), "retries": str(rnd.randint(0, 3))},
        }
        for _ in range(rnd.randint(3, 10))
    ]
    return {
        "event_id": uuid.UUID(int=rnd.getrandbits(128)).hex,
        "timestamp": 1_795_000_000 + i * 0.37,
        "platform": platform,
        "level": rnd.choice(["error", "error", "error", "fatal", "warning"]),
        "release": f"shop@{rnd.randint(1, 4)}.{rnd.randint(0, 20)}.{rnd.randint(0, 9)}",
        "environment": rnd.choice(ENVIRONMENTS),
        "server_name": f"web-{rnd.randint(1, 12)}",
        "transaction": rnd.choice(TRANSACTIONS),
        "exception": {"values": [{
            "type": exc_type,
            "value": template.format(w=word, n=rnd.randint(100, 60_000)),
            "mechanism": {"type": "generic", "handled": rnd.random() < 0.5},
            "stacktrace": {"frames": frames},
        }]},
        "tags": {
            "browser": rnd.choice(BROWSERS),
            "os": rnd.choice(OSES),
            "customer_tier": rnd.choice(["free", "pro", "enterprise"]),
            "region": rnd.choice(["eu-west-1", "us-east-1", "ap-south-1"]),
            "feature_flag.new_checkout": rnd.choice(["on", "off"]),
        },
        "user": {"id": str(rnd.randint(1, 50_000)),
                 "email": f"u{rnd.randint(1, 50_000)}@example.com"},
        "contexts": {"trace": {"trace_id": uuid.UUID(int=rnd.getrandbits(128)).hex,
                               "span_id": f"{rnd.getrandbits(64):016x}"}},
        "sdk": {"name": f"sentry.{platform}", "version": "2.19.0"},
    }


def make_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    received = dt.datetime(2026, 11, 27, 10, 0, 0)
    return [event_row(rnd.choice(PROJECTS), make_event(rnd, i), received) for i in range(count)]


def request_sizes(rnd: random.Random) -> Iterator[int]:
    """Rows per request: mostly one event, some small envelopes, a few bulk sends (max 50)."""
    while True:
        u = rnd.random()
        yield 1 if u < 0.6 else rnd.randint(2, 10) if u < 0.85 else rnd.randint(11, 50)


class RowSource:
    """Cycles through the prepared rows, handing out request-sized slices."""

    def __init__(self, rows: list[dict[str, Any]], seed: int) -> None:
        self.rows = rows
        self.pos = seed * 37 % len(rows)
        self.sizes = request_sizes(random.Random(seed))

    def next_request(self) -> list[dict[str, Any]]:
        n = next(self.sizes)
        start, self.pos = self.pos, (self.pos + n) % len(self.rows)
        if start + n <= len(self.rows):
            return self.rows[start:start + n]
        return self.rows[start:] + self.rows[: start + n - len(self.rows)]


# -- stores ---------------------------------------------------------------------------------

@contextmanager
def fresh_store(kind: str) -> Iterator[TelemetryStore]:
    """An empty store in a temp dir, with the events table; removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f"spyglass-bench-{kind}-"))
    url = "" if kind == "duckdb" else f"chdb://{tmp}/chdb"
    store = open_telemetry_store(url, tmp)
    try:
        store.ensure_table(EVENTS)
        yield store
    finally:
        store.close()  # chDB allows one open session per process: close before the next
        shutil.rmtree(tmp, ignore_errors=True)


# -- one run ---------------------------------------------------------------------------------

@dataclass
class Config:
    mode: str  # "asyncio" | "threads"
    producers: int
    batch_rows: int
    interval_ms: int

    @property
    def label(self) -> str:
        return (f"{self.mode} x{self.producers}, batch_rows={self.batch_rows}, "
                f"interval={self.interval_ms} ms")


@dataclass
class Result:
    rows: int = 0
    requests: int = 0
    rejected: int = 0
    seconds: float = 0.0
    flushes: float = 0.0
    flush_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def rows_per_flush(self) -> float:
        return self.rows / max(self.flushes, 1)

    @property
    def flush_ms(self) -> float:
        return self.flush_seconds / max(self.flushes, 1) * 1000

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000


class Recorder:
    """Collects commit latencies from the flusher thread through future callbacks."""

    def __init__(self) -> None:
        self.result = Result()
        self.lock = threading.Lock()
        self.last_done = 0.0

    def track(self, future: concurrent.futures.Future[None], started: float, rows: int) -> None:
        def done(f: concurrent.futures.Future[None]) -> None:
            now = time.perf_counter()
            if f.exception() is not None:
                return
            with self.lock:
                self.result.latencies.append(now - started)
                self.result.rows += rows
                self.result.requests += 1
                self.last_done = max(self.last_done, now)

        future.add_done_callback(done)


def submit(writer: BatchingWriter, rec: Recorder,
           rows: list[dict[str, Any]]) -> concurrent.futures.Future[None] | None:
    started = time.perf_counter()
    try:
        future = writer.submit(EVENTS, rows)
    except Overloaded:
        with rec.lock:
            rec.result.rejected += 1
        return None
    rec.track(future, started, len(rows))
    return future


def drive_threads(writer: BatchingWriter, rec: Recorder, rows: list[dict[str, Any]],
                  producers: int, deadline: float) -> None:
    def producer(seed: int) -> None:
        source = RowSource(rows, seed)
        while time.perf_counter() < deadline:
            future = submit(writer, rec, source.next_request())
            if future is None:
                time.sleep(0.01)
            else:
                future.result()

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def drive_asyncio(writer: BatchingWriter, rec: Recorder, rows: list[dict[str, Any]],
                  producers: int, deadline: float) -> None:
    async def producer(seed: int) -> None:
        source = RowSource(rows, seed)
        while time.perf_counter() < deadline:
            future = submit(writer, rec, source.next_request())
            if future is None:
                await asyncio.sleep(0.01)
            else:
                await asyncio.wrap_future(future)

    async def main() -> None:
        await asyncio.gather(*(producer(i) for i in range(producers)))

    asyncio.run(main())


DRIVERS: dict[str, Callable[..., None]] = {"asyncio": drive_asyncio, "threads": drive_threads}


def flush_stats() -> tuple[float, float]:
    """The writer's own count of flushes and seconds spent in ``store.insert`` so far."""
    get = selfmetrics.REGISTRY.get_sample_value
    labels = {"table": EVENTS.name}
    return (get("spyglass_writer_flush_seconds_count", labels) or 0.0,
            get("spyglass_writer_flush_seconds_sum", labels) or 0.0)


def run_once(kind: str, cfg: Config, rows: list[dict[str, Any]], seconds: float) -> Result:
    with fresh_store(kind) as store:
        writer = BatchingWriter(store, batch_rows=cfg.batch_rows, interval_ms=cfg.interval_ms)
        writer.start()
        writer.write_sync(EVENTS, rows[:10])  # warm-up: first insert, not timed
        rec = Recorder()
        flushes, flush_seconds = flush_stats()
        started = time.perf_counter()
        DRIVERS[cfg.mode](writer, rec, rows, cfg.producers, started + seconds)
        writer.stop()
        rec.result.seconds = rec.last_done - started
        after = flush_stats()
        rec.result.flushes, rec.result.flush_seconds = after[0] - flushes, after[1] - flush_seconds
        stored = store.count(EVENTS.name)
        if stored != rec.result.rows + 10:
            raise AssertionError(
                f"{kind}: {stored - 10} rows stored, {rec.result.rows} acknowledged")
        return rec.result


# -- direct inserts for reference ------------------------------------------------------------

def insert_reference(kind: str, rows: list[dict[str, Any]], total: int, chunks: int,
                     combine: bool = False, repeat: int = 3) -> float:
    """Rows/s of one ``store.insert`` of ``total`` rows, given as ``chunks`` Arrow chunks.

    One chunk is a bulk load; many small chunks is what the writer hands the store after
    ``pa.concat_tables`` of the requests' own small tables. ``combine`` times
    ``combine_chunks()`` plus the insert, the cost the writer would pay to merge them first.
    The median of ``repeat`` inserts into the same table.
    """
    schema = EVENTS.arrow_schema
    if chunks == 1:
        table = pa.Table.from_pylist((rows * (total // len(rows) + 1))[:total], schema=schema)
    else:
        per = total // chunks
        pieces = [pa.Table.from_pylist(rows[i:i + per], schema=schema) for i in range(50)]
        table = pa.concat_tables([pieces[i % len(pieces)] for i in range(chunks)])
    with fresh_store(kind) as store:
        store.insert(EVENTS, table.slice(0, 10))  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            store.insert(EVENTS, table.combine_chunks() if combine else table)
            times.append(time.perf_counter() - t0)
        return table.num_rows / statistics.median(times)


def small_insert_ms(kind: str, rows: list[dict[str, Any]], n: int, repeat: int = 20) -> float:
    """Median time of one ``store.insert`` of ``n`` rows: the fixed cost of a commit."""
    table = pa.Table.from_pylist(rows[:n], schema=EVENTS.arrow_schema)
    with fresh_store(kind) as store:
        store.insert(EVENTS, table)  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            store.insert(EVENTS, table)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000


# -- main ------------------------------------------------------------------------------------

CONFIGS = [
    Config("asyncio", 64, 10_000, 10),
    Config("asyncio", 64, 10_000, 50),
    Config("asyncio", 64, 200, 50),
    Config("threads", 8, 10_000, 10),
    Config("threads", 8, 10_000, 50),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.5, help="duration of one run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--events", type=int, default=400, help="distinct events to cycle through")
    args = parser.parse_args()

    console = Console(stderr=True)
    rows = make_rows(args.events)
    sizes = sorted(len(r["data"]) for r in rows)
    console.print(f"{len(rows)} distinct events, stored JSON {sizes[0]}-{sizes[-1]} bytes "
                  f"(median {sizes[len(sizes) // 2]})")

    results: dict[tuple[str, str], list[Result]] = {}
    reference: dict[str, dict[str, list[float]]] = {k: {"bulk": [], "chunked": [], "combined": [],
                                                         "small": []}
                                                    for k in STORES}
    total = len(CONFIGS) * len(STORES) * args.repeats + len(STORES) * args.repeats
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("writer benchmark", total=total)
        for _ in range(args.repeats):
            for cfg in CONFIGS:
                for kind in STORES:
                    progress.update(task, description=f"{kind}: {cfg.label}")
                    results.setdefault((cfg.label, kind), []).append(
                        run_once(kind, cfg, rows, args.seconds))
                    progress.advance(task)
            for kind in STORES:
                progress.update(task, description=f"{kind}: direct inserts")
                reference[kind]["bulk"].append(insert_reference(kind, rows, 20_000, 1))
                reference[kind]["chunked"].append(insert_reference(kind, rows, 5_000, 5_000 // 7))
                reference[kind]["combined"].append(
                    insert_reference(kind, rows, 5_000, 5_000 // 7, combine=True))
                reference[kind]["small"].append(small_insert_ms(kind, rows, 7))
                progress.advance(task)

    print(f"\nClosed-loop producers, {args.seconds} s per run, median of {args.repeats} runs; "
          "requests carry 1-50 rows (mean ~6.7). "
          "Latency is submit to commit; insert ms is the mean `store.insert` time per flush.\n")
    print("| producers | batch_rows | interval | store | rows/s | requests/s "
          "| p50 ms | p95 ms | p99 ms | rows/flush | insert ms | rejected |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cfg in CONFIGS:
        for kind in STORES:
            rs = results[(cfg.label, kind)]
            med = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
            print(f"| {cfg.mode} x{cfg.producers} | {cfg.batch_rows} | {cfg.interval_ms} ms "
                  f"| {kind} | {med(lambda r: r.rows_per_s):,.0f} "
                  f"| {med(lambda r: r.requests / r.seconds):,.0f} "
                  f"| {med(lambda r: r.pct(50)):.1f} | {med(lambda r: r.pct(95)):.1f} "
                  f"| {med(lambda r: r.pct(99)):.1f} | {med(lambda r: r.rows_per_flush):.0f} "
                  f"| {med(lambda r: r.flush_ms):.1f} | {sum(r.rejected for r in rs)} |")

    print("\nDirect `store.insert`, median of "
          f"{args.repeats} runs:\n")
    print("| store | 20,000 rows, 1 chunk | 5,000 rows in 714 chunks of 7 "
          "| same, `combine_chunks()` first | one insert of 7 rows |")
    print("|---|---:|---:|---:|---:|")
    for kind in STORES:
        ref = reference[kind]
        print(f"| {kind} | {statistics.median(ref['bulk']):,.0f} rows/s "
              f"| {statistics.median(ref['chunked']):,.0f} rows/s "
              f"| {statistics.median(ref['combined']):,.0f} rows/s "
              f"| {statistics.median(ref['small']):.1f} ms |")


if __name__ == "__main__":
    main()
