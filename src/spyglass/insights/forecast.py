"""Forecaster for capacity planning and predictive alerts: next-horizon values with intervals.

The model is a small, closed-form decomposition chosen per series by rolling-origin
validation (Tashman 2000, "Out-of-sample tests of forecasting accuracy", *Int. J. Forecasting*):

* **Level**: an exponentially weighted mean of the deseasonalised history at the forecast
  origin (simple exponential smoothing, Brown 1956), computed as one weighted sum so no
  recursion runs over the series.
* **Seasonality**: a daily or weekly profile indexed by clock time (so gaps and irregular
  steps keep their phase), estimated as the mean deviation of each time-of-period bucket from
  a centred one-period moving average, over the most recent periods (the classical
  decomposition of Macaulay 1931 / Cleveland et al. 1990 in its simplest form).
* **Trend**: none, a damped (Gardner & McKenzie 1985) or a straight linear trend; the slope is the
  difference of the last two one-period means.

Each combination (smoothing weight x seasonality x trend) forecasts the last ``h`` points of
the history from the point before them; the one with the lowest mean absolute error is refit
on the whole history. Its validation errors give the prediction interval (empirical
quantiles, as in Williams & Goodman 1971, "A simple method for the construction of empirical
confidence limits for economic forecasts"), widened with the lead time by sqrt(h) when the
validation window is shorter than the horizon. Because the winner's own validation errors
are optimistic, they are pooled with its errors from an earlier origin that played no part in
the choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 86_400.0
WEEK = 7 * DAY
ALPHAS = (1.0, 0.3, 0.1, 0.03, 0.01)
TRENDS = (0.0, 0.995, 1.0)  # no trend, damped trend, straight-line trend
#: Validation errors come from one or two origins and still understate how far the future
#: wanders; intervals are widened by this factor (calibrated once on the NAB development set).
INTERVAL_INFLATION = 1.5


@dataclass(frozen=True)
class ModelChoice:
    """One candidate: smoothing weight, seasonal period in seconds (0 = none), trend damping.

    ``trend`` is 0 for no trend, below 1 for a damped trend and 1 for a straight line (what a
    filling disk does).
    """

    alpha: float
    period: float
    trend: float


@dataclass(frozen=True)
class Forecast:
    """Point forecast and an interval at ``coverage`` for each future timestamp."""

    timestamps: np.ndarray  # float seconds
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    coverage: float
    model: ModelChoice
    #: forecast errors (actual - forecast) seen in validation, used for probabilities
    errors: np.ndarray

    def probability_above(self, threshold: float) -> np.ndarray:
        """Probability that each future value is at or above ``threshold``."""
        if self.errors.size == 0:
            return (self.mean >= threshold).astype(np.float64)
        # P(mean + e >= T) with e drawn from the validation errors (scaled for lead time).
        spread = INTERVAL_INFLATION * _lead_scale(self.mean.size, self.errors.size)
        need = (threshold - self.mean) / spread
        errors = np.sort(self.errors)
        return 1.0 - np.searchsorted(errors, need, side="left") / errors.size


@dataclass(frozen=True)
class Crossing:
    """Answer to "when will the series cross T, and how likely is that within the horizon"."""

    time: float | None  # first forecast timestamp whose point forecast crosses, if any
    steps: int | None
    probability: float  # probability that some point within the horizon crosses


def median_step(times: np.ndarray) -> float:
    """Typical spacing of the series (positive differences only, so duplicates don't count)."""
    diffs = np.diff(times)
    diffs = diffs[diffs > 0]
    return float(np.median(diffs)) if diffs.size else 1.0


def forecast(
    times: np.ndarray, values: np.ndarray, horizon: int, coverage: float = 0.8
) -> Forecast:
    """Forecast ``horizon`` steps past the last point of (``times`` seconds, ``values``)."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    times, values = times[keep], values[keep]
    if values.size == 0:
        raise ValueError("no finite values to forecast from")
    step = median_step(times)
    future = times[-1] + step * np.arange(1, horizon + 1)

    n = values.size
    val_len = min(horizon, n // 4)
    best, best_errors = ModelChoice(1.0, 0.0, 0.0), np.zeros(0)
    if val_len >= 2:
        origin = n - val_len
        best_mae = np.inf
        for choice in _candidates(times[:origin], step):
            guess = _predict(times[:origin], values[:origin], times[origin:], step, choice)
            errors = values[origin:] - guess
            mae = float(np.mean(np.abs(errors)))
            if mae < best_mae:
                best, best_mae, best_errors = choice, mae, errors

    # Errors of the winning model are optimistic (it was picked for them), so pool them
    # with its errors from an earlier, unseen origin before reading interval quantiles.
    earlier = n - 2 * val_len
    if val_len >= 2 and earlier >= max(val_len, 8):
        guess = _predict(times[:earlier], values[:earlier], times[earlier : n - val_len], step, best)
        best_errors = np.concatenate([best_errors, values[earlier : n - val_len] - guess])

    mean = _predict(times, values, future, step, best)
    if best_errors.size:
        spread = INTERVAL_INFLATION * _lead_scale(horizon, best_errors.size)
        tail = (1.0 - coverage) / 2.0
        lo, hi = np.quantile(best_errors, [tail, 1.0 - tail])
        # Biased validation errors can put both quantiles on one side; the interval should
        # still contain the point forecast.
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        lower, upper = mean + lo * spread, mean + hi * spread
    else:
        lower = upper = mean.copy()
    return Forecast(future, mean, lower, upper, coverage, best, best_errors)


def when_crosses(result: Forecast, threshold: float, above: bool = True) -> Crossing:
    """When the point forecast first crosses ``threshold`` and the chance of any crossing.

    The chance is the largest per-step exceedance probability, a lower bound on the
    probability that at least one step crosses (the errors of nearby steps are strongly
    correlated, so the bound is close in practice).
    """
    if above:
        crossed = result.mean >= threshold
        probability = result.probability_above(threshold)
    else:
        crossed = result.mean <= threshold
        probability = 1.0 - result.probability_above(threshold)
    hits = np.flatnonzero(crossed)
    first = int(hits[0]) if hits.size else None
    return Crossing(
        time=float(result.timestamps[first]) if first is not None else None,
        steps=first + 1 if first is not None else None,
        probability=float(probability.max()) if probability.size else 0.0,
    )


def _candidates(times: np.ndarray, step: float) -> list[ModelChoice]:
    span = times[-1] - times[0]
    periods = [0.0] + [p for p in (DAY, WEEK) if span >= 2 * p and p >= 4 * step]
    return [ModelChoice(a, p, t) for a in ALPHAS for p in periods for t in TRENDS]


def _predict(
    times: np.ndarray, values: np.ndarray, future: np.ndarray, step: float, choice: ModelChoice
) -> np.ndarray:
    """Forecast ``future`` timestamps from history with one model choice (closed form)."""
    if choice.period:
        profile, buckets = _seasonal_profile(times, values, step, choice.period)
        history_season = profile[_bucket(times, step, choice.period, buckets)]
        future_season = profile[_bucket(future, step, choice.period, buckets)]
    else:
        history_season = np.zeros_like(values)
        future_season = np.zeros_like(future)
    adjusted = values - history_season
    level = _ewm_last(adjusted, choice.alpha)
    forecast = level + future_season
    if choice.trend:
        window = max(int(round((choice.period or DAY) / step)), 2)
        if adjusted.size >= 2 * window:
            slope = (adjusted[-window:].mean() - adjusted[-2 * window : -window].mean()) / window
            lead = np.arange(1, future.size + 1)
            # Damped trend: the cumulative effect converges instead of growing forever.
            phi = choice.trend
            damped = lead if phi >= 1.0 else phi * (1 - phi**lead) / (1 - phi)
            # The smoothed level lags a trending series by about (1 - alpha)/alpha steps.
            lag = min((1 - choice.alpha) / choice.alpha, window)
            forecast = forecast + slope * (damped + lag)
    return forecast


def _ewm_last(values: np.ndarray, alpha: float) -> float:
    """Exponentially weighted mean at the last point, as one dot product (no recursion)."""
    if alpha >= 1.0:
        return float(values[-1])
    length = min(values.size, int(np.ceil(12.0 / alpha)))
    weights = (1.0 - alpha) ** np.arange(length)[::-1]
    return float(np.dot(weights, values[-length:]) / weights.sum())


def _bucket(times: np.ndarray, step: float, period: float, buckets: int) -> np.ndarray:
    return (np.floor(np.mod(times, period) / period * buckets).astype(np.int64)) % buckets


def _seasonal_profile(
    times: np.ndarray, values: np.ndarray, step: float, period: float, max_periods: int = 8
) -> tuple[np.ndarray, int]:
    """Mean deviation from a centred one-period moving average per time-of-period bucket."""
    buckets = max(int(round(period / step)), 1)
    width = buckets
    recent = times >= times[-1] - max_periods * period
    t, v = times[recent], values[recent]
    if v.size < 2 * width:
        return np.zeros(buckets), buckets
    cumsum = np.concatenate([[0.0], np.cumsum(v)])
    moving = (cumsum[width:] - cumsum[:-width]) / width
    start = width // 2
    centre = slice(start, start + moving.size)
    deviation = v[centre] - moving
    index = _bucket(t[centre], step, period, buckets)
    sums = np.bincount(index, weights=deviation, minlength=buckets)
    counts = np.bincount(index, minlength=buckets)
    profile = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return profile - profile[counts > 0].mean() if counts.any() else profile, buckets


def _lead_scale(horizon: int, validated: int) -> np.ndarray:
    """Interval widening for leads beyond the validated window (random-walk sqrt growth)."""
    lead = np.arange(1, horizon + 1)
    return np.sqrt(np.maximum(lead / max(validated, 1), 1.0))
