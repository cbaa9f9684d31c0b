"""Forecast benchmark: Spyglass's forecaster vs seasonal-naive vs statsforecast's AutoETS.

For each of the 41 NAB development series the last 10% is held out and forecast in one go
from the first 90%. Reported per method: MASE (scaled by the in-sample one-step naive MAE,
Hyndman & Koehler 2006), pooled 80% interval coverage, and fitting time. AutoETS gets
``season_length`` = steps per day, capped at 24 (larger periods are not supported well by
ETS; statsforecast then fits a non-seasonal model).

Run: ``.venv/bin/python benchmarks/forecast_benchmark.py [--nab-dir DIR]``
(needs the ``bench`` extra: ``pip install statsforecast``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from spyglass.insights import nab
from spyglass.insights.forecast import DAY, forecast, median_step
from spyglass.insights.series_io import read_series

DEFAULT_NAB = Path("/work/shared/data/nab")


def mase(actual: np.ndarray, predicted: np.ndarray, train: np.ndarray) -> float:
    scale = np.mean(np.abs(np.diff(train)))
    return float(np.mean(np.abs(actual - predicted)) / max(scale, 1e-12))


def seasonal_naive(train: np.ndarray, horizon: int, period: int) -> np.ndarray:
    if period < 1 or train.size < period:
        return np.full(horizon, train[-1])
    last = train[-period:]
    return np.resize(last, horizon)


def run_autoets(train: np.ndarray, horizon: int, season: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from statsforecast.models import AutoETS

    model = AutoETS(season_length=season)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.forecast(y=train.astype(np.float64), h=horizon, level=[80])
    return out["mean"], out["lo-80"], out["hi-80"]


def _nan_forecast(train: np.ndarray, horizon: int, season: int) -> tuple[np.ndarray, ...]:
    nan = np.full(horizon, np.nan)
    return nan, nan, nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nab-dir", type=Path, default=DEFAULT_NAB)
    parser.add_argument("--skip-autoets", action="store_true", help="only time our forecaster")
    args = parser.parse_args()
    corpus = nab.load_corpus(args.nab_dir)

    if args.skip_autoets:
        global run_autoets
        run_autoets = _nan_forecast  # noqa: F811 - lets the loop stay one shape
    run_autoets(np.sin(np.arange(200) / 3.0) + 5, 10, 12)  # JIT warm-up, not timed

    rows = []
    cover = {"ours": [0, 0], "autoets": [0, 0]}
    fit_time = {"ours": 0.0, "autoets": 0.0}
    for name in corpus.names:
        series = read_series(corpus.data_path(name))
        t, v = series.seconds, series.values
        cut = int(round(0.9 * v.size))
        horizon = v.size - cut
        train, test = v[:cut], v[cut:]
        per_day = int(round(DAY / median_step(t[:cut])))

        start = time.perf_counter()
        ours = forecast(t[:cut], train, horizon, coverage=0.8)
        fit_time["ours"] += time.perf_counter() - start

        start = time.perf_counter()
        ets_mean, ets_lo, ets_hi = run_autoets(train, horizon, min(per_day, 24))
        fit_time["autoets"] += time.perf_counter() - start

        snaive = seasonal_naive(train, horizon, per_day if cut >= 2 * per_day else 1)
        for key, lo, hi in (("ours", ours.lower, ours.upper), ("autoets", ets_lo, ets_hi)):
            cover[key][0] += int(np.sum((test >= lo) & (test <= hi)))
            cover[key][1] += test.size
        rows.append((name, mase(test, ours.mean, train), mase(test, ets_mean, train),
                     mase(test, snaive, train), ours.model))

    print(f"{'series':58s} {'ours':>8s} {'AutoETS':>8s} {'sNaive':>8s}  model")
    for name, m_ours, m_ets, m_sn, model in rows:
        print(f"{name:58s} {m_ours:8.3f} {m_ets:8.3f} {m_sn:8.3f}  {model}")
    ours_m = np.array([r[1] for r in rows])
    ets_m = np.array([r[2] for r in rows])
    sn_m = np.array([r[3] for r in rows])
    print()
    print(f"series: {len(rows)}")
    print(f"ours beats AutoETS on MASE: {int(np.sum(ours_m < ets_m))}/{len(rows)}")
    print(f"ours beats seasonal-naive on MASE: {int(np.sum(ours_m < sn_m))}/{len(rows)}")
    print(f"median MASE: ours {np.median(ours_m):.3f}, AutoETS {np.median(ets_m):.3f}, "
          f"seasonal-naive {np.median(sn_m):.3f}")
    print(f"mean MASE:   ours {np.mean(ours_m):.3f}, AutoETS {np.mean(ets_m):.3f}, "
          f"seasonal-naive {np.mean(sn_m):.3f}")
    for key in ("ours", "autoets"):
        hit, total = cover[key]
        print(f"80% interval coverage {key}: {100.0 * hit / total:.1f}% of {total} points")
    print(f"fit+forecast time, all series: ours {fit_time['ours']:.3f} s, "
          f"AutoETS {fit_time['autoets']:.3f} s, "
          f"speed-up {fit_time['autoets'] / max(fit_time['ours'], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
