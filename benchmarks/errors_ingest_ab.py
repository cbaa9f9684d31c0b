"""Side-by-side runs of Spyglass's ingest under different settings (an A/B on a noisy machine).

    .venv/bin/python benchmarks/errors_ingest_ab.py \\
        '{"journal": {}, "direct": {"SPYGLASS_INGEST_JOURNAL": "false"}}' --pairs 3

Each configuration is a set of environment variables for ``spyglass serve`` (any
``SPYGLASS_*`` setting, or the process's own, like ``ARROW_DEFAULT_MEMORY_POOL``). Rounds
alternate the order of the configurations; each run starts a fresh server on a fresh data
directory, warms it up, then sends ``--events`` events from the ingest benchmark's corpus
(``errors_ingest/``) over ``--concurrency`` connections. Printed per run and as medians:
acknowledged events/s, p99 acknowledgement latency, server CPU per event (server and
workers) and the maximum RSS. For the full measurement with Bugsink, use
``errors_ingest.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "errors_ingest"))

import corpus
import loadgen
import servers


def run_once(env: dict[str, str], envelopes: list[bytes], events: int,
             concurrency: int) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory(prefix="errors-ingest-ab-") as tmp:
        server = servers.start_spyglass(Path(tmp), env)
        try:
            target = loadgen.Target("spyglass", "127.0.0.1", server.port, server.project_id,
                                    server.public_key)
            loadgen.run(target, loadgen.build_requests(target, envelopes[::-1], 200), 16)
            requests = loadgen.build_requests(target, envelopes, events)
            meter = servers.Meter(server.pids)
            cpu0 = meter.cpu_seconds()
            meter.start()
            result = loadgen.run(target, requests, concurrency)
            cpu1 = meter.cpu_seconds()
            meter.stop()
        finally:
            server.stop()
    return (result.ok / result.seconds, loadgen.quantile(result.latencies, 0.99) * 1000,
            (cpu1 - cpu0) * 1000 / max(1, result.ok), meter.rss_max / 2**20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("configs", help='JSON: {"name": {"ENV": "value", ...}, ...}')
    ap.add_argument("--pairs", type=int, default=3, help="rounds over every configuration")
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    configs: dict[str, dict[str, str]] = json.loads(args.configs)
    envelopes = corpus.load(6000)
    results: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in configs}
    for round_ in range(args.pairs):
        order = list(configs) if round_ % 2 == 0 else list(configs)[::-1]
        for name in order:
            row = run_once(configs[name], envelopes, args.events, args.concurrency)
            results[name].append(row)
            print(f"  {name}: {row[0]:.0f} ev/s, p99 {row[1]:.0f} ms, "
                  f"{row[2]:.3f} ms CPU/event, RSS {row[3]:.0f} MB", flush=True)
    print("| configuration | ack events/s | p99 ms | CPU ms/event | RSS max MB |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        med = [statistics.median(r[i] for r in rows) for i in range(4)]
        print(f"| {name} | {med[0]:,.0f} | {med[1]:.0f} | {med[2]:.3f} | {med[3]:.0f} |")


if __name__ == "__main__":
    main()
