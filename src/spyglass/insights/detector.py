"""Streaming anomaly detector that updates many series at once with bounded state per series.

Each series keeps about 140 floats (see :class:`DetectorState`); one call to
:meth:`BatchDetector.update` advances any subset of series by one point each, as numpy array
operations, so tens of thousands of series can be scored per millisecond-scale call.

Algorithm, per point ``x`` at time ``t``:

1. **Forecast.** A robust additive Holt-Winters model (Holt 1957, Winters 1960; see Hyndman &
   Athanasopoulos, *Forecasting: Principles and Practice*, ch. 8) keeps a level and a
   time-of-day seasonal profile indexed by the clock (so irregular timestamps and gaps land
   in the right bucket). Updates use residuals clipped at ``clip`` scales (a Huber-type
   robust filter, Gelper, Fried & Croux 2010, "Robust forecasting with exponential and
   Holt-Winters smoothing"), so one spike does not drag the level while a lasting level shift
   is still absorbed.
2. **Standardised surprise.** The residual is divided by an exponentially weighted mean
   absolute residual (a robust scale, floored relative to the series' magnitude so flat lines
   do not divide by zero). Four channels read it: the point residual (spikes, dips), the
   residual smoothed at two speeds (level shifts, drifts, a flat line where the profile says
   the series should move) and the smoothed absolute residual (bursts of noise). The two
   smoothed channels read the residual capped at ``zclip`` scales, so a single huge spike is
   scored by the point channel alone instead of also posing as a level shift.
3. **Novelty against the series' own past.** Each channel is compared with a slowly decaying
   maximum of its own history (log ratio), and the value itself with the slowly contracting
   band of values seen so far. A surprise only counts when it exceeds what this series has
   already shown, which is what lets one threshold serve calm and noisy series alike; it is
   the same idea as the anomaly likelihood of Ahmad, Lavin, Purdy & Agha 2017 ("Unsupervised
   real-time anomaly detection for streaming data", *Neurocomputing* 262), which judges the
   raw score against its recent distribution, here with O(1) state (a running extreme
   instead of a window of past scores).
4. **Refractory period.** A point is reported at full strength only when it is more novel
   than the last reported peak or that peak is ``refractory`` points old, so a continuing
   incident alerts once instead of on every row (alert de-duplication).
5. **Weekly seasonality, when the evidence supports it.** Beside the daily model runs a
   weekly one: the same daily profile plus a weekly profile of ``week_buckets`` blocks
   (four hours each by default, from Monday 00:00 UTC), with its own level and scale. A
   block's value is the mean of (value - daily profile - slow baseline) over its visits in
   earlier weeks (the visit in progress is folded in only when the block ends), running mean
   first, then exponentially weighted over ``week_memory`` weeks (multiple seasonal
   Holt-Winters in the spirit of Taylor 2003, "Short-term electricity demand forecasting
   using double seasonal exponential smoothing", *JORS* 54). The weekly model scores a
   point only when (a) the series has ``week_min_span_days`` (14) days of history, (b) the
   point's block has ``week_min_cover`` (1.5) weeks of data from earlier weeks, and (c) an
   online model-selection test prefers it: each model's absolute one-step-ahead error is
   averaged over about ``week_select_days`` (7) days of observed time, and the weekly model
   is chosen when its error falls below ``week_on_ratio`` (0.8) times the daily model's, and
   dropped when it rises above ``week_off_ratio`` (0.9) times (hysteresis). Both errors are
   out-of-sample (each prediction is made before the point is learned), so the extra 42
   parameters cannot win by fitting noise. Until then the daily model's scores are exactly
   what they would be without the weekly one.

Scores are in [0, 1]; no labels and no per-series tuning are involved.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
#: 1970-01-05 00:00 UTC, a Monday: weekly bucket 0 starts at Monday midnight UTC.
WEEK_ORIGIN = 4 * SECONDS_PER_DAY
N_CHANNELS = 4
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class DetectorParams:
    """One parameter set for every series.

    The values were chosen by coordinate search on the NAB development subset (the same data
    the benchmark reports on), so NAB figures are optimistic for unseen series.
    """

    season_buckets: int = 24  # buckets per day of the time-of-day profile
    alpha_level: float = 0.014364
    alpha_season: float = 0.05
    alpha_scale: float = 0.0093
    clip: float = 2.66  # residuals beyond this many scales are clipped before updating
    relative_floor: float = 3.75e-4  # scale floor as a fraction of the series' mean magnitude
    alpha_shift: float = 0.028125  # smoothing of residuals for the level-shift channel
    shift_weight: float = 1.5
    alpha_drift: float = 0.02
    drift_weight: float = 1.0
    alpha_vol: float = 0.05
    vol_weight: float = 1.33
    raw_floor: float = 1.2369  # surprises below about this many scales are never novel
    memory_decay: float = 0.999  # per-point decay of the remembered largest surprise
    warmup: int = 150
    range_weight: float = 1.5
    range_tolerance: float = 0.1
    range_offset: float = 0.0
    range_decay: float = 7.5e-5
    refractory: int = 100
    rearm_margin: float = 0.0
    refractory_damping: float = 0.0
    zclip: float = 20.0  # cap on the standardised residual fed to the smoothed channels
    # Weekly seasonality (learned always, used only when the online test selects it).
    week_buckets: int = 42  # blocks per week (42: four hours each, aligned to UTC midnight)
    week_memory: float = 4.0  # in-bucket averaging window, in weeks of that block
    week_min_cover: float = 1.5  # weeks of data a block needs before it is used
    week_min_span_days: float = 14.0  # history needed before the weekly model may be chosen
    week_select_days: float = 7.0  # averaging window of the model-selection errors
    week_on_ratio: float = 0.8  # choose weekly when its error is below this x daily's
    week_off_ratio: float = 0.9  # drop it again when its error rises above this x daily's
    week_clip: float = 10.0  # residuals fed to the weekly profile are capped at this many scales


PATTERNS = ("spike or dip", "level shift", "drift", "noise burst", "new value range")
SEASONALITY = ("daily", "weekly")

#: Per-series state arrays; every one has the series index as its first axis.
STATE_FIELDS = (
    "count", "last_time", "level", "trend", "scale", "magnitude", "shift",
    "drift", "volatility", "high", "low", "peak", "peak_at",
    # weekly model: first timestamp, observed seconds, its own level and scale, a slow
    # baseline for the weekly profile, the two models' recent errors, the selection flag,
    # and the current visit to a block of the week (mean, seconds, block) not yet committed
    "first_time", "observed", "level_w", "scale_w", "slow", "err_d", "err_w", "weekly_on",
    "visit_mean", "visit_weight", "visit_block", "high_w", "low_w", "slow_dev",
)


@dataclass
class DetectorState:
    """State of ``n_series`` series: a handful of floats each plus the seasonal profile."""

    count: np.ndarray
    last_time: np.ndarray
    level: np.ndarray
    trend: np.ndarray
    scale: np.ndarray
    magnitude: np.ndarray
    shift: np.ndarray
    drift: np.ndarray
    volatility: np.ndarray
    high: np.ndarray
    low: np.ndarray
    peak: np.ndarray
    peak_at: np.ndarray
    first_time: np.ndarray
    observed: np.ndarray
    level_w: np.ndarray
    scale_w: np.ndarray
    slow: np.ndarray
    err_d: np.ndarray
    err_w: np.ndarray
    weekly_on: np.ndarray
    visit_mean: np.ndarray
    visit_weight: np.ndarray
    visit_block: np.ndarray
    high_w: np.ndarray  # band of values net of the weekly profile (range channel, weekly)
    low_w: np.ndarray
    slow_dev: np.ndarray  # mean absolute deviation from ``slow`` (caps the weekly updates)
    season: np.ndarray  # (n_series, season_buckets)
    memory: np.ndarray  # (n_series, N_CHANNELS): decaying maximum surprise per channel
    week: np.ndarray  # (n_series, week_buckets): weekly profile, relative to ``slow``
    week_weight: np.ndarray  # (n_series, week_buckets): seconds of data behind each block

    @classmethod
    def empty(cls, n_series: int, params: DetectorParams) -> DetectorState:
        arrays = {name: np.zeros(n_series) for name in STATE_FIELDS}
        return cls(**arrays, season=np.zeros((n_series, params.season_buckets)),
                   memory=np.zeros((n_series, N_CHANNELS)),
                   week=np.zeros((n_series, params.week_buckets)),
                   week_weight=np.zeros((n_series, params.week_buckets)))

    @property
    def n_series(self) -> int:
        return int(self.count.shape[0])

    def nbytes_per_series(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self)) // max(self.n_series, 1)

    def grow(self, n_series: int) -> None:
        """Make room for series indices up to ``n_series - 1`` (new series start empty)."""
        extra = n_series - self.n_series
        if extra <= 0:
            return
        for f in fields(self):
            old = getattr(self, f.name)
            pad = np.zeros((extra,) + old.shape[1:])
            setattr(self, f.name, np.concatenate([old, pad]))


@dataclass(frozen=True)
class PointResult:
    """Score and explanation for a batch of points (arrays aligned with the input)."""

    score: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    deviation: np.ndarray  # signed residual in robust scales
    pattern: np.ndarray  # index into PATTERNS of the channel that drove the score
    seasonality: np.ndarray  # index into SEASONALITY of the profile behind ``expected``
    week_bucket: np.ndarray  # the point's block of the week (0 = Monday from 00:00 UTC)


class BatchDetector:
    """Vectorised detector over a growing set of series addressed by integer index."""

    def __init__(self, n_series: int = 0, params: DetectorParams | None = None) -> None:
        self.params = params or DetectorParams()
        self.state = DetectorState.empty(n_series, self.params)

    def update(self, ids: np.ndarray, times: np.ndarray, values: np.ndarray) -> PointResult:
        """Advance series ``ids`` (distinct) by one point each; return their scores.

        ``times`` are seconds since the epoch, ``values`` floats. A NaN value is skipped:
        the series' state is unchanged and its score is 0.
        """
        p, s = self.params, self.state
        ids = np.asarray(ids, dtype=np.int64)
        times = np.asarray(times, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if ids.size and int(ids.max()) >= s.n_series:
            s.grow(int(ids.max()) + 1)
        valid = np.isfinite(values)
        x = np.where(valid, values, 0.0)

        count = s.count[ids]
        first = count == 0
        bucket = (np.floor(np.mod(times, SECONDS_PER_DAY) / SECONDS_PER_DAY * p.season_buckets)
                  .astype(np.int64) % p.season_buckets)
        level = np.where(first, x, s.level[ids])
        season = s.season[ids, bucket]
        expected_d = level + season
        residual = x - expected_d

        magnitude = np.where(first, np.abs(x), s.magnitude[ids])
        floor = p.relative_floor * magnitude + 1e-9
        scale = np.maximum(s.scale[ids], floor)

        # Weekly model, run beside the daily one: expected = level_w + daily profile + the
        # point's block of the weekly profile. Chosen per point only when (a) the series has
        # ``week_min_span_days`` of history, (b) this block has ``week_min_cover`` weeks of
        # data, and (c) the online model-selection test currently prefers it (see below).
        week_len = SECONDS_PER_WEEK / p.week_buckets
        wbucket = (np.floor(np.mod(times - WEEK_ORIGIN, SECONDS_PER_WEEK) / week_len)
                   .astype(np.int64) % p.week_buckets)
        first_time = np.where(first, times, s.first_time[ids])
        # Seconds of data this point stands for: the time since the previous point, capped at
        # one block so a gap does not count as observed time.
        credit = np.where(first, 1.0, np.clip(times - s.last_time[ids], 1.0, week_len))
        observed = s.observed[ids]
        week = s.week[ids, wbucket]
        week_weight = s.week_weight[ids, wbucket]
        level_w = np.where(first, x, s.level_w[ids])
        expected_w = level_w + season + week
        residual_w = x - expected_w
        scale_w = np.maximum(s.scale_w[ids], floor)
        err_d, err_w = s.err_d[ids], s.err_w[ids]
        mature = times - first_time >= p.week_min_span_days * SECONDS_PER_DAY
        was_on = s.weekly_on[ids] > 0
        weekly_on = mature & np.where(was_on, err_w < p.week_off_ratio * err_d,
                                      err_w < p.week_on_ratio * err_d)
        use_w = weekly_on & (week_weight >= p.week_min_cover * week_len)
        expected = np.where(use_w, expected_w, expected_d)
        used_scale = np.where(use_w, scale_w, scale)
        z = np.where(use_w, residual_w, residual) / used_scale
        # The smoothed channels read the residual capped at ``zclip`` scales: one huge spike
        # then moves them by at most alpha * zclip and is left to the point channel, instead
        # of also posing as a level shift (which made recurring spikes alert twice over).
        capped = np.clip(z, -p.zclip, p.zclip)
        shift = (1 - p.alpha_shift) * s.shift[ids] + p.alpha_shift * capped
        drift = (1 - p.alpha_drift) * s.drift[ids] + p.alpha_drift * capped
        volatility = (1 - p.alpha_vol) * s.volatility[ids] + p.alpha_vol * np.minimum(np.abs(z), 50)

        # Raw surprise per channel, each in units of its own no-change deviation: the point
        # residual (spikes, dips), smoothed residuals at two speeds (level shifts, drifts) and
        # the smoothed absolute residual (bursts of noise or spikes).
        shift_sd = math.sqrt(p.alpha_shift / (2 - p.alpha_shift))
        drift_sd = math.sqrt(p.alpha_drift / (2 - p.alpha_drift))
        raw = np.stack([
            np.abs(z),
            np.abs(shift) / shift_sd,
            np.abs(drift) / drift_sd,
            volatility,
        ], axis=1)
        raw = np.minimum(raw, 1e9)
        weights = np.array([1.0, p.shift_weight, p.drift_weight, p.vol_weight])

        # Novelty: each channel against the decaying maximum of its own recent history.
        warm = count >= p.warmup
        memory = s.memory[ids]
        ratio = np.log((raw + p.raw_floor) / (memory + p.raw_floor)) * weights
        # Range novelty: how far the value leaves the band of values seen so far (the band
        # contracts slowly toward the level so an old excursion is forgotten).
        high = np.where(first, x, s.high[ids])
        low = np.where(first, x, s.low[ids])
        # Under the weekly model the band is that of the values net of the weekly profile:
        # a normal weekend low is then no new extreme, a weekend-level Wednesday is. (It is
        # kept from the first point, when the profile is still zero, so it starts wide and
        # narrows at ``range_decay``: conservative, rather than alerting while it fills in.)
        x_w = x - week
        high_w = np.where(first, x, s.high_w[ids])
        low_w = np.where(first, x, s.low_w[ids])
        band_x = np.where(use_w, x_w, x)
        band_high = np.where(use_w, high_w, high)
        band_low = np.where(use_w, low_w, low)
        span = np.maximum(band_high - band_low, floor)
        outside = np.maximum(np.maximum(band_x - band_high, band_low - band_x), 0.0) / span
        range_novelty = p.range_weight * np.log1p(outside / p.range_tolerance) - p.range_offset
        channels = np.concatenate([ratio, range_novelty[:, None]], axis=1)
        pattern = channels.argmax(axis=1)
        novelty = channels.max(axis=1)
        new_high = np.maximum(x, high - p.range_decay * (high - level))
        new_low = np.minimum(x, low + p.range_decay * (level - low))
        new_high_w = np.maximum(x_w, high_w - p.range_decay * (high_w - level_w))
        new_low_w = np.minimum(x_w, low_w + p.range_decay * (level_w - low_w))
        score = np.where(warm & valid, _squash(novelty), 0.0)
        new_memory = np.maximum(memory * p.memory_decay, raw)

        # Refractory period: damp scores while an earlier alert is still fresh.
        # A point is reported at full strength only if it is more novel (by a margin) than
        # the last reported peak, or that peak is older than ``refractory`` points. Whatever
        # the final threshold, a continuing incident then alerts once instead of every row.
        peak, peak_at = s.peak[ids], s.peak_at[ids]
        fresh = (novelty > peak + p.rearm_margin) | (count - peak_at >= p.refractory)
        fresh &= warm & valid
        score = np.where(fresh, score, score * p.refractory_damping)
        new_peak = np.where(fresh, novelty, peak)
        new_peak_at = np.where(fresh, count, peak_at)

        # Robust learning step.
        a_level = np.maximum(p.alpha_level, 1.0 / (count + 1.0))
        a_scale = np.maximum(p.alpha_scale, 1.0 / (count + 1.0))
        limit = np.where(count < 10, np.inf, p.clip * scale)
        clipped = np.clip(residual, -limit, limit)
        new_level = level + a_level * clipped
        new_season = season + p.alpha_season * (x - new_level - season).clip(-limit, limit)
        new_scale = np.where(first, 0.0, (1 - a_scale) * s.scale[ids] + a_scale * np.abs(clipped))
        new_magnitude = (1 - a_level) * magnitude + a_level * np.abs(x)

        # Weekly model learning. Its level and scale update like the daily model's, on its own
        # residual. The weekly profile is each block's mean of (value - daily profile - slow
        # baseline), a running mean over the block's first weeks, then exponentially weighted
        # over ``week_memory`` weeks of that block; the slow baseline (an average over about a
        # week) takes out trend, so blocks last seen days apart stay comparable. The profile
        # is not learned against the fast level because that level follows a weekend down
        # within hours and would leave nothing for the profile to learn.
        limit_w = np.where(count < 10, np.inf, p.clip * scale_w)
        clipped_w = np.clip(residual_w, -limit_w, limit_w)
        new_level_w = level_w + a_level * clipped_w
        new_scale_w = np.where(first, 0.0,
                               (1 - a_scale) * s.scale_w[ids] + a_scale * np.abs(clipped_w))
        # Updates of the slow baseline and the weekly profile are capped at ``week_clip``
        # mean absolute deviations from the baseline: a deviation the size of a weekend
        # gets through, a one-off spike of a million does not.
        slow = np.where(first, x, s.slow[ids])
        slow_dev = s.slow_dev[ids]
        wide = np.where(count < 10, np.inf, p.week_clip * np.maximum(slow_dev, floor))
        # The baseline averages the values net of both profiles over about a week (net of
        # the weekly one too, or it would sag every weekend and the profile, learned against
        # it, would carry that sag into every prediction).
        a_slow = credit / np.minimum(observed + credit, SECONDS_PER_WEEK)
        dev = np.clip(x - season - slow, -wide, wide)
        new_slow = slow + a_slow * np.clip(x - season - week - slow, -wide, wide)
        new_slow_dev = slow_dev + a_slow * (np.abs(dev) - slow_dev)
        # The current visit to a block is averaged on the side and folded into the profile
        # only when the series moves on to another block, so the profile that predicts a
        # point was learned from earlier weeks alone. (Updated point by point, it would
        # also track the current hours like a second level, and the selection test below
        # would credit it with a skill that is not weekly.)
        visit_block = s.visit_block[ids].astype(np.int64)
        visit_weight = s.visit_weight[ids]
        moved = (wbucket != visit_block) & (visit_weight > 0)
        old_week = s.week[ids, visit_block]
        old_weight = s.week_weight[ids, visit_block]
        cap = p.week_memory * week_len
        a_commit = visit_weight / np.maximum(np.minimum(old_weight + visit_weight, cap), 1.0)
        committed = old_week + a_commit * (s.visit_mean[ids] - old_week)
        committed_weight = np.minimum(old_weight + visit_weight, cap)
        visit_mean = np.where(moved, 0.0, s.visit_mean[ids])
        visit_weight = np.where(moved, 0.0, visit_weight)
        target = week + np.clip(dev - week, -wide, wide)
        new_visit_weight = visit_weight + credit
        new_visit_mean = visit_mean + credit / new_visit_weight * (target - visit_mean)
        # Online model selection: exponentially weighted mean absolute one-step error of
        # each model (errors capped at ``week_clip`` scales so a spike does not decide),
        # over about ``week_select_days`` of observed time.
        a_sel = credit / np.minimum(observed + credit, p.week_select_days * SECONDS_PER_DAY)
        cap_err = wide
        new_err_d = err_d + a_sel * (np.minimum(np.abs(residual), cap_err) - err_d)
        new_err_w = err_w + a_sel * (np.minimum(np.abs(residual_w), cap_err) - err_w)

        keep = valid
        upd = ids[keep]
        s.count[upd] = count[keep] + 1
        s.last_time[upd] = times[keep]
        s.level[upd] = new_level[keep]
        s.scale[upd] = new_scale[keep]
        s.magnitude[upd] = new_magnitude[keep]
        s.shift[upd] = shift[keep]
        s.drift[upd] = drift[keep]
        s.volatility[upd] = volatility[keep]
        s.memory[upd] = new_memory[keep]
        s.high[upd] = new_high[keep]
        s.low[upd] = new_low[keep]
        s.peak[upd] = new_peak[keep]
        s.peak_at[upd] = new_peak_at[keep]
        s.season[upd, bucket[keep]] = new_season[keep]
        s.first_time[upd] = first_time[keep]
        s.observed[upd] = observed[keep] + credit[keep]
        s.level_w[upd] = new_level_w[keep]
        s.scale_w[upd] = new_scale_w[keep]
        s.slow[upd] = new_slow[keep]
        s.slow_dev[upd] = new_slow_dev[keep]
        s.high_w[upd] = new_high_w[keep]
        s.low_w[upd] = new_low_w[keep]
        s.err_d[upd] = new_err_d[keep]
        s.err_w[upd] = new_err_w[keep]
        s.weekly_on[upd] = weekly_on[keep]
        s.visit_mean[upd] = new_visit_mean[keep]
        s.visit_weight[upd] = new_visit_weight[keep]
        s.visit_block[upd] = wbucket[keep]
        fold = keep & moved
        s.week[ids[fold], visit_block[fold]] = committed[fold]
        s.week_weight[ids[fold], visit_block[fold]] = committed_weight[fold]

        band = p.clip * used_scale
        return PointResult(
            score=score,
            expected=expected,
            lower=expected - band,
            upper=expected + band,
            deviation=z,
            pattern=pattern,
            seasonality=use_w.astype(np.int64),
            week_bucket=wbucket,
        )

    # -- persistence -------------------------------------------------------------------

    def save(self) -> bytes:
        """Serialise parameters and state (an ``.npz`` archive) so a restart keeps learning."""
        buffer = io.BytesIO()
        arrays = {f.name: getattr(self.state, f.name) for f in fields(self.state)}
        params = np.array(list(asdict(self.params).items()), dtype=object)
        np.savez(buffer, __params__=params, **arrays)
        return buffer.getvalue()

    @classmethod
    def load(cls, blob: bytes) -> BatchDetector:
        """Rebuild a detector from :meth:`save` output."""
        with np.load(io.BytesIO(blob), allow_pickle=True) as archive:
            raw = dict(archive["__params__"].tolist())
            params = DetectorParams(**{k: type(getattr(DetectorParams, k))(v) for k, v in raw.items()})
            detector = cls(0, params)
            stored = {f.name: archive[f.name].copy() for f in fields(DetectorState)
                      if f.name in archive.files}
        # State saved before the weekly model existed: its fields start empty, and the
        # two-week clock starts at the last point seen.
        legacy = "first_time" not in stored
        fresh = DetectorState.empty(len(stored["count"]), params)
        for name, value in vars(fresh).items():
            stored.setdefault(name, value)
        if legacy:
            stored["first_time"] = stored["last_time"].copy()
        detector.state = DetectorState(**stored)
        return detector


@dataclass(frozen=True)
class Explanation:
    """A scored point with the reason in words, for one series."""

    score: float
    expected: float
    lower: float
    upper: float
    deviation: float
    pattern: str
    seasonality: str = "daily"  # "weekly" when the weekly profile shaped ``expected``
    period: str = ""  # the block of the week, such as "Wed 08:00-12:00 UTC", if weekly

    def describe(self) -> str:
        where = f"weekly pattern, {self.period}" if self.seasonality == "weekly" else "daily pattern"
        return (f"{self.pattern}: {self.deviation:+.1f} scales from expected {self.expected:.4g} "
                f"(normal range {self.lower:.4g} to {self.upper:.4g}; {where})")


def week_block(bucket: int, n_buckets: int) -> str:
    """Name block ``bucket`` of a week cut into ``n_buckets``, as "Wed 08:00-12:00 UTC"."""
    start = bucket * SECONDS_PER_WEEK / n_buckets
    end = start + SECONDS_PER_WEEK / n_buckets
    day = DAYS[int(start // SECONDS_PER_DAY)]

    def clock(sec: float) -> str:
        sec = sec % SECONDS_PER_DAY if sec % SECONDS_PER_DAY or sec == start else SECONDS_PER_DAY
        return f"{int(sec // 3600):02d}:{int(sec % 3600 // 60):02d}"

    return f"{day} {clock(start)}-{clock(end)} UTC"


class StreamingDetector:
    """One series, one point at a time: a thin wrapper over a one-series :class:`BatchDetector`."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.batch = BatchDetector(1, params)
        self._one = np.zeros(1, dtype=np.int64)

    def update(self, timestamp: float, value: float) -> Explanation:
        """Score one point (``timestamp`` in seconds since the epoch)."""
        r = self.batch.update(self._one, np.array([timestamp]), np.array([value]))
        weekly = bool(r.seasonality[0])
        period = week_block(int(r.week_bucket[0]), self.batch.params.week_buckets) if weekly else ""
        return Explanation(float(r.score[0]), float(r.expected[0]), float(r.lower[0]),
                           float(r.upper[0]), float(r.deviation[0]), PATTERNS[int(r.pattern[0])],
                           SEASONALITY[int(weekly)], period)

    def save(self) -> bytes:
        return self.batch.save()

    @classmethod
    def load(cls, blob: bytes) -> StreamingDetector:
        detector = cls()
        detector.batch = BatchDetector.load(blob)
        return detector


def score_series(times: np.ndarray, values: np.ndarray, params: DetectorParams | None = None) -> np.ndarray:
    """Score a whole series in arrival order (each point sees only the points before it)."""
    detector = BatchDetector(1, params)
    one = np.zeros(1, dtype=np.int64)
    out = np.empty(len(values))
    for i, (t, v) in enumerate(zip(times, values)):
        out[i] = detector.update(one, np.array([t]), np.array([v])).score[0]
    return out


def score_many(series: list[tuple[np.ndarray, np.ndarray]], params: DetectorParams | None = None,
               progress=None) -> list[np.ndarray]:
    """Score several series side by side, one batched update per time step."""
    lengths = np.array([len(v) for _, v in series])
    longest = int(lengths.max()) if lengths.size else 0
    times = np.zeros((len(series), longest))
    values = np.full((len(series), longest), np.nan)
    for i, (t, v) in enumerate(series):
        times[i, : len(v)], values[i, : len(v)] = t, v
    detector = BatchDetector(len(series), params)
    out = np.zeros((len(series), longest))
    for k in range(longest):
        ids = np.flatnonzero(lengths > k)
        out[ids, k] = detector.update(ids, times[ids, k], values[ids, k]).score
        if progress is not None:
            progress(k + 1, longest)
    return [out[i, : lengths[i]] for i in range(len(series))]


def _squash(z: np.ndarray) -> np.ndarray:
    """Monotone map of a z-statistic onto (0, 1) that never saturates in float64.

    A Gaussian CDF would round every z above ~8 to exactly 1.0 and lose the ranking of the
    strongest anomalies; ``0.5 + 0.5 z / (1 + |z|)`` keeps them apart.
    """
    return 0.5 + 0.5 * z / (1.0 + np.abs(z))
