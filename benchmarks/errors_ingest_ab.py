"""Side-by-side runs of Spyglass's ingest under different settings (an A/B on a noisy machine).

    .venv/bin/python benchmarks/errors_ingest_ab.py \\
        '{"journal": {}, "direct": {"SPYGLASS_INGEST_JOURNAL": "false"}}' --pairs 3

Each configuration is a set of environment variables for ``spyglass serve`` (any
``SPYGLASS_*`` setting, or the process's own, like ``ARROW_DEFAULT_MEMORY_POOL``). Rounds
alternate the order of the configurations; each run starts a fresh server on a fresh data
directory and is measured exactly as ``errors_ingest.py`` measures Spyglass (its
``measure``: warm-up, ``--events`` events of the corpus over ``--concurrency`` connections,
until the Sentry web API shows them all). Printed per run and as medians: processed and
acknowledged events/s, p99 acknowledgement latency, server CPU per event (server and
workers) and the maximum RSS. For the comparison with Bugsink, use ``errors_ingest.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "errors_ingest"))

import corpus
from errors_ingest import measure

#: (column of errors_ingest.measure's row, heading, format)
FIGURES = [("processed_eps", "processed events/s", "{:,.0f}"), ("ack_eps", "ack events/s", "{:,.0f}"),
           ("p99_ms", "p99 ms", "{:.0f}"), ("cpu_ms_per_event", "CPU ms/event", "{:.3f}"),
           ("rss_max_mb", "RSS max MB", "{:.0f}")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("configs", help='JSON: {"name": {"ENV": "value", ...}, ...}')
    ap.add_argument("--pairs", type=int, default=3, help="rounds over every configuration")
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    configs: dict[str, dict[str, str]] = json.loads(args.configs)
    envelopes = corpus.load(6000)
    results: dict[str, list[dict]] = {k: [] for k in configs}
    with tempfile.TemporaryDirectory(prefix="errors-ingest-ab-") as tmp:
        for round_ in range(args.pairs):
            order = list(configs) if round_ % 2 == 0 else list(configs)[::-1]
            for name in order:
                row = measure("spyglass", Path(tmp) / f"{name}-{round_}", envelopes,
                              args.events, args.warmup, args.concurrency, configs[name], None)
                results[name].append(row)
                print(f"  {name}: " + ", ".join(f"{head} {fmt.format(row[key])}"
                                                for key, head, fmt in FIGURES), flush=True)
    print("| configuration | " + " | ".join(head for _k, head, _f in FIGURES) + " |")
    print("|---|" + "---:|" * len(FIGURES))
    for name, rows in results.items():
        print(f"| {name} | " + " | ".join(
            fmt.format(statistics.median(r[key] for r in rows)) for key, head, fmt in FIGURES)
            + " |")


if __name__ == "__main__":
    main()
