"""Logs search latency: full-text, attribute and severity queries over a million log lines.

Loads N synthetic but realistic log records (10 services, severities skewed to info, bodies
from templates with ids and numbers, a few attributes each) into DuckDB and into chDB, side
by side, then times the explorer's own queries (``spyglass.otel.logs_queries``): the first
page of results and the match count, for a rare word, a common word, an attribute filter and
an error-level filter, over the whole 24 h range. Prints medians of 5 runs per query.

    .venv/bin/python benchmarks/logs_search.py --rows 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from spyglass.kernel.telemetry import open_telemetry_store
from spyglass.otel.logs_queries import LogQuery, count, page
from spyglass.otel.schema import LOGS, RESOURCES

SERVICES = ["web", "api-gateway", "checkout", "payments", "inventory", "search", "auth",
            "notifications", "recommendations", "shipping"]
TEMPLATES = [
    "GET /api/v1/products/{id} 200 in {ms} ms",
    "user {id} added item {item} to cart",
    "cache miss for key product:{id}",
    "payment {id} authorised amount={ms}.00 EUR",
    "retrying request to inventory (attempt {n})",
    "slow query: SELECT * FROM orders WHERE id = {id} took {ms} ms",
    "order {id} shipped via dhl",
    "connection pool exhausted, waiting {ms} ms",
    "timeout calling payments after {ms} ms",
]
RARE = "card_declined: insufficient funds for order {id}"
SEVERITIES = [(9, "INFO")] * 80 + [(5, "DEBUG")] * 10 + [(13, "WARN")] * 7 + [(17, "ERROR")] * 3


def make_rows(n: int, start: dt.datetime, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        template = RARE if rng.random() < 0.0005 else rng.choice(TEMPLATES)
        number, text = rng.choice(SEVERITIES)
        ts = start + dt.timedelta(seconds=86400 * i / n)
        rows.append({
            "project_id": 1, "timestamp": ts, "observed": ts,
            "service": rng.choice(SERVICES), "severity_number": number, "severity_text": text,
            "body": template.format(id=rng.randrange(10**6), ms=rng.randrange(2000),
                                    item=rng.randrange(500), n=rng.randrange(1, 4)),
            "trace_id": f"{rng.getrandbits(128):032x}", "span_id": f"{rng.getrandbits(64):016x}",
            "event_name": "", "scope_name": "app",
            "attributes": {"http.route": rng.choice(["/cart", "/checkout", "/search", "/p/{id}"]),
                           "region": rng.choice(["eu-west-1", "us-east-1"]),
                           "customer.tier": rng.choice(["free", "pro", "team"])},
            "resource_id": 0, "source": "otlp",
        })
    return rows


def load(url: str, data_dir: Path, n: int, start: dt.datetime) -> tuple[object, float]:
    store = open_telemetry_store(url, data_dir)
    store.ensure_table(LOGS)
    store.ensure_table(RESOURCES)  # attribute terms also match resource attributes
    rng = random.Random(7)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        chunk = min(100_000, n - done)
        rows = make_rows(chunk, start + dt.timedelta(seconds=86400 * done / n), rng)
        store.insert(LOGS, pa.Table.from_pylist(rows, schema=LOGS.arrow_schema))
        done += chunk
    if store.dialect == "clickhouse":
        store.execute("OPTIMIZE TABLE logs FINAL")
    return store, time.perf_counter() - t0


def timed(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    start = dt.datetime(2026, 11, 26)
    until = start + dt.timedelta(days=1)
    queries = {
        "rare word (card_declined)": "card_declined",
        "common word (timeout)": "timeout",
        "attribute (customer.tier=team)": "customer.tier=team",
        "word + service + attribute": "timeout service=payments region=eu-west-1",
        "errors only": "level=error",
    }
    results: dict[str, dict[str, tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in (("DuckDB", ""), ("chDB", f"chdb://{tmp}/chdb")):
            store, load_s = load(url, Path(tmp) / name, args.rows, start)
            print(f"{name}: loaded {args.rows:,} rows in {load_s:.1f} s")
            for label, text in queries.items():
                q = LogQuery.parse(1, start, until, text)
                first = timed(lambda q=q: page(store, q, limit=100))
                n = count(store, q)
                total = timed(lambda q=q: count(store, q))
                results.setdefault(label, {})[name] = (first, total, n)
            store.close()
    print(f"\nmedian of 5 runs, {args.rows:,} log lines over 24 h, whole range searched\n")
    print("| query | matches | DuckDB first page | DuckDB count | chDB first page | chDB count |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, by in results.items():
        d, c = by["DuckDB"], by["chDB"]
        print(f"| {label} | {d[2]:,} | {d[0]:.0f} ms | {d[1]:.0f} ms | {c[0]:.0f} ms | {c[1]:.0f} ms |")


if __name__ == "__main__":
    main()
