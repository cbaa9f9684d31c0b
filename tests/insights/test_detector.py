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
    assert detector.state.nbytes_per_series() == before < 2048


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


# -- weekly seasonality ----------------------------------------------------------------------

MONDAY = 1704067200.0  # 2024-01-01 00:00 UTC
THRESHOLD = 0.6404  # the NAB corpus threshold (the CLI default)


def weekday_weekend(weeks: int = 5, seed: int = 0, step: float = 600.0):
    """Weekdays around 100, weekends around 40, a daily wave on top, noise, and gaps."""
    rng = np.random.default_rng(seed)
    t = MONDAY + step * np.arange(int(weeks * 7 * 86400 / step))
    day = ((t - MONDAY) // 86400) % 7
    v = (np.where(day >= 5, 40.0, 100.0) + 10 * np.sin(2 * np.pi * (t % 86400) / 86400)
         + 2 * rng.normal(size=t.size))
    gap = ((t >= MONDAY + 10 * 86400) & (t < MONDAY + 11 * 86400))  # all of Thursday, week 2
    gap |= (t >= MONDAY + 15 * 86400 + 3600) & (t < MONDAY + 15 * 86400 + 7 * 3600)
    gap |= (t >= MONDAY + 6 * 86400 + 13 * 3600) & (t < MONDAY + 6 * 86400 + 20 * 3600)
    return t[~gap], v[~gap]


def run(t, v, params=None):
    detector = StreamingDetector(params)
    return [detector.update(a, b) for a, b in zip(t, v)]


def test_weekly_pattern_normal_weekend_quiet_weekend_level_wednesday_flagged():
    t, v = weekday_weekend()
    # Wednesday of week 5, 14:00 UTC: the value a Saturday would have at that hour.
    wed = int(np.flatnonzero(t >= MONDAY + (4 * 7 + 2) * 86400 + 14 * 3600)[0])
    v[wed] = 40.0 + 10 * np.sin(2 * np.pi * (t[wed] % 86400) / 86400)
    results = run(t, v)
    scores = np.array([r.score for r in results])
    weekly = np.array([r.seasonality == "weekly" for r in results])
    days = (t - MONDAY) / 86400

    # The weekly model is not used before two weeks of history, and is used after.
    assert not weekly[days < 14].any()
    assert weekly[days >= 21].all()
    # From week 3 on, weekends (and their edges) are normal; the Wednesday is not.
    later = (days >= 14) & (np.arange(t.size) != wed)
    weekend = later & (((days // 1) % 7) >= 5)
    assert weekend.sum() > 500
    assert scores[weekend].max() < THRESHOLD
    assert scores[later].max() < THRESHOLD
    assert scores[wed] >= THRESHOLD
    assert first_alarm(scores, int(np.flatnonzero(days >= 14)[0])) == wed
    assert results[wed].deviation < -10
    assert "weekly pattern, Wed 12:00-16:00 UTC" in results[wed].describe()

    # The daily-only detector (weekly model never chosen) alerts on every Saturday and
    # misses the Wednesday: what the weekly model is for.
    daily = np.array([r.score for r in run(t, v, DetectorParams(week_on_ratio=0.0))])
    assert daily[wed] < THRESHOLD
    assert daily[weekend].max() >= THRESHOLD


def test_no_weekly_structure_behaviour_unchanged():
    # Five weeks of a daily pattern only, with a spike: the weekly model never wins the
    # selection test, so every score equals the daily-only detector's.
    t = MONDAY + 600.0 * np.arange(5 * 7 * 144)
    rng = np.random.default_rng(7)
    v = 100 + 10 * np.sin(2 * np.pi * (t % 86400) / 86400) + 2 * rng.normal(size=t.size)
    v[4000] += 40
    results = run(t, v)
    assert not any(r.seasonality == "weekly" for r in results)
    scores = np.array([r.score for r in results])
    np.testing.assert_array_equal(scores, score_series(t, v, DetectorParams(week_on_ratio=0.0)))
    assert first_alarm(scores, 500) == 4000
    assert "daily pattern" in results[4000].describe()


def test_weekly_model_waits_for_two_weeks_even_when_strong():
    # Ten days of a strong weekday/weekend pattern: too short for the weekly model.
    t, v = weekday_weekend(weeks=2)
    keep = t < MONDAY + 13.9 * 86400
    assert not any(r.seasonality == "weekly" for r in run(t[keep], v[keep]))


@settings(max_examples=12, deadline=None)
@given(
    noise=st.lists(st.floats(-30, 30, allow_nan=False), min_size=400, max_size=400),
    cut=st.integers(min_value=0, max_value=400),
    drop=st.integers(min_value=0, max_value=399),
)
def test_save_restore_exact_with_weekly_model_active(noise, cut, drop):
    # Two-hour steps over five weeks with a weekday/weekend pattern, so the restore lands
    # before, around or after the weekly model switches on; one point is a gap (NaN).
    t = MONDAY + 7200.0 * np.arange(420)
    day = ((t - MONDAY) // 86400) % 7
    v = np.where(day >= 5, 40.0, 100.0) + 0.1 * np.r_[np.array(noise), np.zeros(20)]
    v[drop] = np.nan
    params = DetectorParams(warmup=5)
    straight = run(t, v, params)
    assert any(r.seasonality == "weekly" for r in straight)
    first = StreamingDetector(params)
    head = [first.update(a, b) for a, b in zip(t[:cut], v[:cut])]
    resumed = StreamingDetector.load(first.save())
    tail = [resumed.update(a, b) for a, b in zip(t[cut:], v[cut:])]
    assert [r.score for r in head + tail] == [r.score for r in straight]
    assert [r.expected for r in head + tail] == [r.expected for r in straight]


def test_state_saved_before_the_weekly_model_loads():
    import io

    detector = BatchDetector(2)
    for k in range(50):
        detector.update(np.arange(2), np.full(2, MONDAY + 600.0 * k), np.array([1.0, 2.0]) + k % 3)
    with np.load(io.BytesIO(detector.save()), allow_pickle=True) as archive:
        legacy_fields = ("count", "last_time", "level", "trend", "scale", "magnitude", "shift",
                         "drift", "volatility", "high", "low", "peak", "peak_at", "season", "memory")
        params = [row for row in archive["__params__"].tolist() if not row[0].startswith("week")]
        legacy = {name: archive[name] for name in legacy_fields}
    buffer = io.BytesIO()
    np.savez(buffer, __params__=np.array(params, dtype=object), **legacy)
    restored = BatchDetector.load(buffer.getvalue())
    np.testing.assert_array_equal(restored.state.first_time, detector.state.last_time)
    assert restored.state.week.shape == (2, DetectorParams().week_buckets)
    result = restored.update(np.arange(2), np.full(2, MONDAY + 600.0 * 50), np.array([1.0, 2.0]))
    assert np.all(np.isfinite(result.score))
