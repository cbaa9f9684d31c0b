"""Detector throughput: points per second per core across 10,000 concurrent series.

Each step advances all series by one point with one batched numpy update (the way Spyglass
runs it after an ingest batch commits). Also reports state memory per series and the
one-point-at-a-time API's rate. numpy is pinned to one thread so the figure is per core.

Run: ``.venv/bin/python benchmarks/detector_throughput.py [--series N] [--steps K]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from spyglass.insights.detector import BatchDetector, StreamingDetector  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n = args.series
    ids = np.arange(n)
    base = rng.uniform(1, 1000, size=n)
    detector = BatchDetector(n)
    # Warm up past the detector's warm-up period so the timed steps do the full work.
    for k in range(200):
        detector.update(ids, np.full(n, 1.6e9 + 60.0 * k), base + rng.normal(size=n))
    values = base + rng.normal(size=(args.steps, n))
    start_cpu, start = time.process_time(), time.perf_counter()
    for k in range(args.steps):
        detector.update(ids, np.full(n, 1.6e9 + 60.0 * (200 + k)), values[k])
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    points = n * args.steps
    print(f"batched: {n} series x {args.steps} steps = {points} points")
    print(f"  wall {wall:.2f} s -> {points / wall:,.0f} points/s; "
          f"CPU {cpu:.2f} s -> {points / cpu:,.0f} points/s per core")
    print(f"  state: {detector.state.nbytes_per_series()} bytes per series "
          f"({detector.state.nbytes_per_series() * n / 1e6:.1f} MB for {n} series)")
    print(f"  serialised state: {len(detector.save()) / n:.0f} bytes per series")

    single = StreamingDetector()
    count = 5000
    start = time.perf_counter()
    for k in range(count):
        single.update(1.6e9 + 60.0 * k, float(k % 17))
    print(f"one point at a time (single series): {count / (time.perf_counter() - start):,.0f} points/s")


if __name__ == "__main__":
    main()
