"""Detector throughput: points per second per core across 10,000 concurrent series.

Each step advances all series by one point with one batched numpy update (the way Spyglass
runs it after an ingest batch commits). Also reports state memory per series and the
one-point-at-a-time API's rate. numpy is pinned to one thread so the figure is per core.

``--weekly`` times the detector with its weekly model in use: hourly points, half of the
series with a weekday/weekend pattern, and enough warm-up (three weeks) for the model to be
chosen; it reports the share of timed points the weekly model scored.

Run: ``.venv/bin/python benchmarks/detector_throughput.py [--series N] [--steps K] [--weekly]``
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
    parser.add_argument("--weekly", action="store_true",
                        help="hourly points, weekly pattern on half the series, 3 weeks warm-up")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n = args.series
    ids = np.arange(n)
    base = rng.uniform(1, 1000, size=n)
    step, warmup = (3600.0, 21 * 24) if args.weekly else (60.0, 200)
    start_time = 1704067200.0  # a Monday, 00:00 UTC
    weekend_drop = np.where(np.arange(n) % 2 == 0, 0.4 * base, 0.0) if args.weekly else 0.0

    def values_at(k: int, noise: np.ndarray) -> np.ndarray:
        weekend = ((k * step // 86400) % 7) >= 5
        return base - weekend * weekend_drop + noise

    detector = BatchDetector(n)
    # Warm up past the detector's warm-up period so the timed steps do the full work.
    for k in range(warmup):
        detector.update(ids, np.full(n, start_time + step * k), values_at(k, rng.normal(size=n)))
    noise = rng.normal(size=(args.steps, n))
    weekly_points = 0
    start_cpu, start = time.process_time(), time.perf_counter()
    for k in range(args.steps):
        result = detector.update(ids, np.full(n, start_time + step * (warmup + k)),
                                 values_at(warmup + k, noise[k]))
        weekly_points += int(result.seasonality.sum())
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    points = n * args.steps
    print(f"batched: {n} series x {args.steps} steps = {points} points")
    print(f"  weekly model scored {weekly_points / points:.0%} of the timed points")
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
