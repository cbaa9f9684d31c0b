"""Error ingest benchmark: processed events/s, ack latency, CPU and memory, Spyglass vs Bugsink.

    .venv/bin/python benchmarks/errors_ingest.py [--runs 3] [--events 30000] \
        [--bugsink-events 3000] [--concurrency 64] [--only spyglass|bugsink]
    .venv/bin/python benchmarks/errors_ingest.py --only spyglass --profile /tmp/prof

The corpus (``errors_ingest/corpus.py``) is envelopes made by the real ``sentry-sdk`` from 72
crash sites of a small fake shop, with users, releases, environments, tags, breadcrumbs and
local variables (mean ~15 KB per event before gzip). Each request carries one event, gzip
compressed, authenticated with ``X-Sentry-Auth`` as the SDK does, and each copy of a corpus
event gets a fresh event id, so nothing is deduplicated away.

For each server, in every run, on a fresh data directory: start it (``errors_ingest/
servers.py``), create a project programmatically, send a warm-up of a few hundred events and
wait until they are processed, then send the measured events from ``--concurrency``
connections in a closed loop (``errors_ingest/loadgen.py``) and wait until every
acknowledged event is processed:

- processed events/s = acknowledged events / (time from the first request until the last
  event is stored, grouped and visible). For Spyglass that moment is when the Sentry web API
  (``/api/0/projects/…/issues/``, with an API token, every page) counts every event sent: it
  replies only after an event is grouped and durable, and a read first loads what its ingest
  journal holds; the stored events and issues are counted again after the server stops, as a
  check. For Bugsink it is when the last event appears in ``events_event`` and Snappea's task
  queue is empty (it digests after replying);
- ack latency p50/p95/p99 per request, as the client sees it;
- server CPU ms per event: user + sys CPU time of the server processes and their children
  (gunicorn's master and workers plus Snappea for Bugsink), read before and after, divided
  by the events. It does not depend on what else the machine runs, unlike the wall clock;
- server RSS: sampled every 100 ms, the maximum (summed over processes for Bugsink);
- the load generator's own CPU ms per event.

Runs alternate which server goes first; the summary gives medians over runs and the ratios.
Bugsink is installed in its own venv (``BUGSINK_VENV``, default /tmp/bugsink-venv), e.g.
``python3 -m venv /tmp/bugsink-venv && /tmp/bugsink-venv/bin/pip install bugsink``.
``--profile DIR`` runs py-spy (``--gil``: only the thread holding the GIL is sampled, so the
profile shows where CPU goes rather than who waits) on the Spyglass server and its ingest
workers during the first run's measured phase, writes the collapsed stacks there and prints
the time per process and per part of the ingest path. The profiler slows the server, so take
CPU figures from runs without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "errors_ingest"))

import corpus
import loadgen
import servers

TARGET_EPS = 2000
TARGET_P99_MS = 250
TARGET_RATIO = 10
TARGET_CPU_MS = 1.0
TARGET_RSS_MB = 500


def measure(name: str, work: Path, envelopes: list[bytes], events: int, warmup: int,
            concurrency: int, extra_env: dict[str, str], profile: Path | None) -> dict:
    if name == "spyglass":
        server = servers.start_spyglass(work, extra_env)
    else:
        server = servers.start_bugsink(work)
    spy = None
    try:
        target = loadgen.Target(name, "127.0.0.1", server.port, server.project_id,
                                server.public_key)
        # The warm-up events come from the end of the corpus, the measured ones from its start.
        warm = loadgen.build_requests(target, envelopes[::-1], warmup)
        requests = loadgen.build_requests(target, envelopes, events)
        done = loadgen.run(target, warm, min(concurrency, 16))
        if name == "bugsink":
            servers.wait_bugsink(server.data_dir, done.ok)
        meter = servers.Meter(server.pids)
        cpu0 = meter.cpu_seconds()
        meter.start()
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [str(HERE.parent / ".venv" / "bin" / "py-spy"), "record", "--pid",
                 str(server.pids[0]), "--rate", "250", "--format", "raw", "--gil", "--nonblocking",
                 "--subprocesses",
                 "-o", str(profile / "spyglass.collapsed")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        result = loadgen.run(target, requests, concurrency)
        if name == "bugsink":
            processed_at, counts = servers.wait_bugsink(server.data_dir, done.ok + result.ok)
            counts["events"] -= done.ok
        else:
            # Spyglass replies once the event is stored and grouped, and a read loads what its
            # ingest journal holds first: the events are visible once the API shows them all.
            counts = {}
            while servers.spyglass_api_events(server) < done.ok + result.ok:
                time.sleep(0.01)
            processed_at = time.perf_counter()
        cpu1 = meter.cpu_seconds()
        meter.stop()
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
    finally:
        server.stop()
    if name == "spyglass":
        counts = servers.spyglass_counts(server.data_dir)
        counts["events"] -= done.ok
    seconds = processed_at - result.started
    processed = min(result.ok, counts["events"])
    row = {
        "server": name,
        "events": result.ok,
        "processed": processed,
        "issues": counts.get("issues"),
        "processed_eps": processed / seconds,
        "ack_eps": result.ok / result.seconds,
        **loadgen.summary(result),
        "cpu_ms_per_event": (cpu1 - cpu0) * 1000 / max(1, result.ok),
        "rss_max_mb": meter.rss_max / 2**20,
        "gen_cpu_ms_per_event": result.cpu_s * 1000 / max(1, result.sent),
        "seconds": seconds,
        "connects": result.connects,
        "counts": counts,
    }
    return row


def print_row(row: dict) -> None:
    print(f"  {row['server']:8} {row['processed']:>6}/{row['events']:<6} processed "
          f"{row['processed_eps']:8.1f} ev/s (ack {row['ack_eps']:8.1f}/s)  "
          f"p50/p95/p99 {row['p50_ms']:6.1f}/{row['p95_ms']:6.1f}/{row['p99_ms']:6.1f} ms  "
          f"cpu {row['cpu_ms_per_event']:6.2f} ms/ev  rss {row['rss_max_mb']:5.0f} MB  "
          f"gen {row['gen_cpu_ms_per_event']:.3f} ms/ev  issues {row['issues']}  "
          f"statuses {row['statuses']}", flush=True)


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=30000, help="measured events for Spyglass")
    ap.add_argument("--bugsink-events", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--corpus-size", type=int, default=6000)
    ap.add_argument("--only", choices=["spyglass", "bugsink"])
    ap.add_argument("--env", action="append", default=[],
                    help="extra SPYGLASS_*=value for the Spyglass server (repeatable)")
    ap.add_argument("--profile", type=Path, help="py-spy the Spyglass server into this dir")
    ap.add_argument("--json", type=Path, help="also write every row here")
    args = ap.parse_args()

    started = time.perf_counter()
    envelopes = corpus.load(args.corpus_size)
    sizes = [len(e) for e in envelopes]
    print(f"corpus: {len(envelopes)} envelopes from the real sentry-sdk, mean "
          f"{statistics.mean(sizes) / 1024:.1f} KB (max {max(sizes) / 1024:.1f} KB) before gzip; "
          f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    names = [args.only] if args.only else ["spyglass", "bugsink"]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="errors-ingest-") as tmp:
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs} (load average {os.getloadavg()[0]:.1f})",
                  flush=True)
            order = names if run % 2 == 0 else names[::-1]
            for name in order:
                count = args.events if name == "spyglass" else args.bugsink_events
                row = measure(name, Path(tmp) / f"{name}-{run}", envelopes, count, args.warmup,
                              args.concurrency, extra_env,
                              args.profile if name == "spyglass" and run == 0 else None)
                row["run"] = run
                rows.append(row)
                print_row(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    summarize(rows, names)
    if args.profile:
        stacks = args.profile / "spyglass.collapsed"
        cpu = next(r["cpu_ms_per_event"] for r in rows if r["server"] == "spyglass")
        print(f"\npy-spy (--gil) profile of the Spyglass server, from {stacks}:")
        for share, part in profile_parts(stacks):
            print(f"  {share * 100:5.1f}%  {share * cpu:5.2f} ms/event  {part}")


#: Parts of the ingest path, matched against each sampled stack in this order (first wins).
PARTS = [
    ("worker: scrub (errors.scrub.scrub_event)", "scrub_event ("),
    ("worker: normalize (errors.normalize.normalize_event)", "normalize_event ("),
    ("worker: grouping (group_event)", "group_event ("),
    ("worker: decode + envelope parse", "parse_envelope ("),
    ("worker: rest (JSON parse/dump, rows, frames)", "Worker.handle ("),
    ("worker: reading tasks, writing replies", "spyglass.errors.worker"),
    ("server: issue assignment (IssueResolver.resolve)", "IssueResolver.resolve ("),
    ("server: processing in-process (no worker)", "EventProcessor.process ("),
    ("server: finish (duplicates, issue, row)", "EventProcessor.finish ("),
    ("server: replies from workers (unpickle)", "_Worker._read ("),
    ("server: tasks to workers", "_Worker.send ("),
    ("server: writer flush incl. DuckDB insert", "BatchingWriter._run ("),
    ("server: writer submit", "BatchingWriter.write ("),
    ("server: thread pool hand-off (run_in_threadpool)", "run_sync_in_worker_thread ("),
    ("server: regression job", "detect_regressions ("),
    ("server: uvicorn / event loop / request handling", "Runner.run ("),
]


def profile_parts(path: Path) -> list[tuple[float, str]]:
    from collections import Counter

    parts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        part = next((name for name, frame in PARTS if frame in stack), "other")
        parts[part] += n
    return [(n / total, part) for part, n in parts.most_common()]


def summarize(rows: list[dict], names: list[str]) -> None:
    keys = ["processed_eps", "ack_eps", "p50_ms", "p95_ms", "p99_ms", "cpu_ms_per_event",
            "rss_max_mb", "gen_cpu_ms_per_event"]
    med = {n: {k: median([r for r in rows if r["server"] == n], k) for k in keys} for n in names}
    print("\nmedians over runs:")
    print("| server | processed ev/s | ack ev/s | p50 ms | p95 ms | p99 ms | CPU ms/event "
          "| RSS max MB | generator CPU ms/event |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in names:
        m = med[n]
        print(f"| {n} | {m['processed_eps']:,.0f} | {m['ack_eps']:,.0f} | {m['p50_ms']:.1f} | "
              f"{m['p95_ms']:.1f} | {m['p99_ms']:.1f} | {m['cpu_ms_per_event']:.2f} | "
              f"{m['rss_max_mb']:.0f} | {m['gen_cpu_ms_per_event']:.3f} |")
    if "spyglass" in med:
        s = med["spyglass"]
        print(f"\nSpyglass: {s['processed_eps']:,.0f} ev/s (target >= {TARGET_EPS:,}: "
              f"{'met' if s['processed_eps'] >= TARGET_EPS else 'MISSED'}), p99 "
              f"{s['p99_ms']:.0f} ms (< {TARGET_P99_MS}: "
              f"{'met' if s['p99_ms'] < TARGET_P99_MS else 'MISSED'}), CPU "
              f"{s['cpu_ms_per_event']:.2f} ms/event (<= {TARGET_CPU_MS}: "
              f"{'met' if s['cpu_ms_per_event'] <= TARGET_CPU_MS else 'MISSED'}), RSS "
              f"{s['rss_max_mb']:.0f} MB (< {TARGET_RSS_MB}: "
              f"{'met' if s['rss_max_mb'] < TARGET_RSS_MB else 'MISSED'})")
    if len(med) == 2:
        ratios = []
        for run in sorted({r["run"] for r in rows}):
            pair = {r["server"]: r for r in rows if r["run"] == run}
            ratios.append((pair["spyglass"]["processed_eps"] / pair["bugsink"]["processed_eps"],
                           pair["bugsink"]["cpu_ms_per_event"] / pair["spyglass"]["cpu_ms_per_event"]))
        tput = statistics.median(r[0] for r in ratios)
        cpu = statistics.median(r[1] for r in ratios)
        print(f"throughput ratio (per run, median): {tput:.1f}x (target >= {TARGET_RATIO}x: "
              f"{'met' if tput >= TARGET_RATIO else 'MISSED'}); per-run "
              + ", ".join(f"{r[0]:.1f}x" for r in ratios))
        print(f"CPU per event ratio Bugsink/Spyglass (median): {cpu:.1f}x; per-run "
              + ", ".join(f"{r[1]:.1f}x" for r in ratios))


if __name__ == "__main__":
    main()
