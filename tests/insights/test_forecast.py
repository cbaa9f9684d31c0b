"""The forecaster on synthetic series with known seasonality and known threshold crossings."""

from __future__ import annotations

import numpy as np
import pytest

from spyglass.insights.forecast import DAY, forecast, when_crosses

STEP = 300.0


def test_recovers_daily_pattern():
    rng = np.random.default_rng(0)
    t = 1.6e9 + STEP * np.arange(288 * 10)
    truth = lambda s: 50 + 20 * np.sin(2 * np.pi * (s % DAY) / DAY)  # noqa: E731
    v = truth(t) + rng.normal(scale=1.0, size=t.size)
    result = forecast(t, v, horizon=288)
    assert result.model.period == DAY
    assert np.mean(np.abs(result.mean - truth(result.timestamps))) < 1.5
    assert np.all(result.lower <= result.mean) and np.all(result.mean <= result.upper)


def test_interval_covers_about_80_percent_of_noise():
    rng = np.random.default_rng(1)
    t = 1.6e9 + STEP * np.arange(5000)
    v = 10 + rng.normal(size=t.size)
    result = forecast(t[:4500], v[:4500], horizon=500)
    covered = np.mean((v[4500:] >= result.lower) & (v[4500:] <= result.upper))
    assert 0.7 <= covered <= 0.97


def test_disk_fills_up_on_schedule():
    # 0.25% per hour for four days (40% to 64%): 90% is about 104 hours = 1250 steps away.
    rng = np.random.default_rng(2)
    t = 1.6e9 + STEP * np.arange(288 * 4)
    v = 40 + (t - t[0]) / 3600.0 * 0.25 + rng.normal(scale=0.2, size=t.size)
    start = v[-1]
    result = forecast(t, v, horizon=2000)
    crossing = when_crosses(result, 90.0)
    expected_steps = (90.0 - start) / 0.25 * 12
    assert crossing.steps is not None
    assert abs(crossing.steps - expected_steps) < 0.2 * expected_steps
    assert crossing.probability > 0.9


def test_flat_series_never_crosses():
    t = 1.6e9 + STEP * np.arange(1000)
    v = np.full(1000, 5.0)
    crossing = when_crosses(forecast(t, v, horizon=100), 6.0)
    assert crossing.steps is None and crossing.probability == 0.0


def test_gaps_and_nans_are_tolerated():
    t = 1.6e9 + 3600.0 * np.r_[np.arange(300), np.arange(400, 700)]
    v = np.sin(np.arange(600) / 5.0)
    v[10] = np.nan
    result = forecast(t, v, horizon=24)
    assert result.mean.shape == (24,)
    assert result.timestamps[0] == pytest.approx(t[-1] + 3600.0)
