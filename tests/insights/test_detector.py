"""The streaming detector on synthetic series with known anomalies, and state save/restore."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.insights.detector import (
    BatchDetector,
    DetectorParams,
    StreamingDetector,
    score_many,
    score_series,
)

STEP = 300.0


def seasonal(n: int, seed: int = 0, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = 1.6e9 + STEP * np.arange(n)
    daily = 10 * np.sin(2 * np.pi * (t % 86400) / 86400)
    return t, 100 + daily + noise * rng.normal(size=n)


def first_alarm(scores: np.ndarray, start: int) -> int:
    """Index of the strongest score after ``start`` (where a threshold would fire first)."""
    return start + int(np.argmax(scores[start:]))


def test_spike_is_the_top_score():
    t, v = seasonal(3000)
    v[2500] += 40
    scores = score_series(t, v)
    assert first_alarm(scores, 500) == 2500
    assert 0.0 <= scores.min() and scores.max() <= 1.0


def test_level_shift_is_flagged_within_a_few_points():
    t, v = seasonal(3000, seed=1)
    v[2000:] += 15
    scores = score_series(t, v)
    top = first_alarm(scores, 500)
    assert 2000 <= top <= 2010


def test_dip_below_everything_seen():
    t, v = seasonal(3000, seed=2)
    v[2200] -= 60
    assert first_alarm(score_series(t, v), 500) == 2200


def test_calm_series_stays_low():
    t, v = seasonal(3000, seed=3)
    scores = score_series(t, v)
    assert scores[500:].max() < 0.7


def test_flat_line_and_gaps_do_not_crash():
    t = 1.6e9 + STEP * np.r_[np.arange(500), np.arange(900, 1400)]  # a gap in time
    v = np.full(1000, 7.0)
    v[600] = np.nan
    scores = score_series(t, v)
    assert np.all(np.isfinite(scores))
    assert scores[600] == 0.0
    assert scores.max() == 0.5  # a constant series is never novel


def test_batch_equals_one_at_a_time():
    series = [seasonal(800, seed=s) for s in range(3)]
    series[1][1][700] += 50
    together = score_many(series)
    for (t, v), batched in zip(series, together):
        np.testing.assert_allclose(batched, score_series(t, v))


def test_streaming_wrapper_explains():
    t, v = seasonal(1200, seed=4)
    v[1100] += 80
    detector = StreamingDetector()
    results = [detector.update(a, b) for a, b in zip(t, v)]
    spike = results[1100]
    assert spike.score > 0.7
    assert spike.deviation > 5
    assert not (spike.lower <= v[1100] <= spike.upper)
    assert "expected" in spike.describe()


def test_state_is_bounded():
    detector = BatchDetector(10)
    before = detector.state.nbytes_per_series()
    t, v = seasonal(2000)
    for i in range(2000):
        detector.update(np.arange(10), np.full(10, t[i]), np.full(10, v[i]))
    assert detector.state.nbytes_per_series() == before < 1024


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=300),
    cut=st.integers(min_value=0, max_value=300),
)
def test_save_restore_continues_identically(values, cut):
    v = np.array(values)
    t = 1.6e9 + STEP * np.arange(v.size)
    cut = min(cut, v.size)
    params = DetectorParams(warmup=5)
    straight = score_series(t, v, params)

    first = StreamingDetector(params)
    head = [first.update(a, b).score for a, b in zip(t[:cut], v[:cut])]
    resumed = StreamingDetector.load(first.save())
    tail = [resumed.update(a, b).score for a, b in zip(t[cut:], v[cut:])]
    np.testing.assert_array_equal(np.array(head + tail), straight)


@settings(max_examples=15, deadline=None)
@given(n_series=st.integers(1, 20), steps=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_batch_save_restore_roundtrip(n_series, steps, seed):
    rng = np.random.default_rng(seed)
    detector = BatchDetector(n_series)
    for k in range(steps):
        ids = np.flatnonzero(rng.random(n_series) < 0.7)
        detector.update(ids, np.full(ids.size, 1.6e9 + STEP * k), rng.normal(size=ids.size))
    restored = BatchDetector.load(detector.save())
    assert restored.params == detector.params
    for name in vars(detector.state):
        np.testing.assert_array_equal(getattr(restored.state, name), getattr(detector.state, name))



def test_one_huge_spike_barely_moves_the_smoothed_channels():
    # The level-shift and drift channels read residuals capped at ``zclip`` scales, so one
    # enormous spike moves them by at most alpha * zclip and is scored as a spike.
    t, v = seasonal(2501, seed=5)
    v[2500] += 1e6
    params = DetectorParams()
    detector = StreamingDetector(params)
    results = [detector.update(a, b) for a, b in zip(t, v)]
    state = detector.batch.state
    assert results[2500].deviation > params.zclip
    assert abs(state.shift[0]) <= params.alpha_shift * params.zclip + 0.5
    assert abs(state.drift[0]) <= params.alpha_drift * params.zclip + 0.5
    assert results[2500].score > 0.9
