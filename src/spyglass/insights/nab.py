"""A scorer for the Numenta Anomaly Benchmark (NAB), written from the published rules.

Reference: A. Lavin and S. Ahmad, "Evaluating Real-time Anomaly Detection Algorithms -- the
Numenta Anomaly Benchmark", IEEE ICMLA 2015 (arXiv:1510.03336), and the scoring description in
the data set's README. This module does not reuse NAB's code.

In short: each row after a probationary period gets a weight, the score it would add if it were
a detection. Inside a labelled window the weight is a scaled sigmoid of the row's position, so
early detections earn most; outside, the weight is a negative false-positive cost that is
softened just after a window. A window with no detection costs ``fnWeight``. One threshold is
chosen for the whole corpus by sweeping every distinct score, and the corpus score is
normalised so that the null detector scores 0 and a perfect one 100.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NO_DETECTION_THRESHOLD = 1.1


@dataclass(frozen=True)
class Profile:
    """Costs of one NAB application profile."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def load_profiles(path: str | Path) -> dict[str, Profile]:
    """Read NAB's ``profiles.json`` (the ``tnWeight`` entry is unused by the rules)."""
    raw = json.loads(Path(path).read_text())
    return {
        name: Profile(name, m["CostMatrix"]["tpWeight"], m["CostMatrix"]["fpWeight"],
                      m["CostMatrix"]["fnWeight"])
        for name, m in raw.items()
    }


@dataclass(frozen=True)
class LabelledFile:
    """One data file's row count and anomaly windows as inclusive row-index pairs."""

    name: str
    n_rows: int
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        return min(math.floor(0.15 * self.n_rows), 750)


def windows_to_rows(timestamps: np.ndarray, windows: list[list[str]]) -> list[tuple[int, int]]:
    """Map each window's timestamp bounds to the first row carrying that timestamp."""
    stamps = timestamps.astype("datetime64[us]")
    result = []
    for start, end in windows:
        bounds = []
        for text in (start, end):
            hits = np.flatnonzero(stamps == np.datetime64(text.strip().replace(" ", "T"), "us"))
            if hits.size == 0:
                raise ValueError(f"window bound {text} is not a timestamp of the file")
            bounds.append(int(hits[0]))
        result.append((bounds[0], bounds[1]))
    return result


def _sigma(y: np.ndarray) -> np.ndarray:
    """NAB's scaled sigmoid: 2/(1+e^(5y)) - 1, pinned to -1 beyond y = 3."""
    with np.errstate(over="ignore"):
        out = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, out)


def row_weights(item: LabelledFile, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Per-row detection weight and window index (-1 outside windows) for every row."""
    n = item.n_rows
    weight = np.full(n, -profile.fp_weight)
    window_of = np.full(n, -1, dtype=np.int64)
    sigma_left = float(_sigma(np.array(-1.0)))
    idx = np.arange(n, dtype=np.float64)
    for k, (left, right) in enumerate(item.windows):
        width = right - left + 1
        inside = slice(left, right + 1)
        weight[inside] = profile.tp_weight * _sigma(-(right - idx[inside] + 1) / width) / sigma_left
        window_of[inside] = k
        # Rows after this window, up to the next one, are scored relative to it.
        next_left = item.windows[k + 1][0] if k + 1 < len(item.windows) else n
        after = slice(right + 1, next_left)
        if width > 1:
            weight[after] = profile.fp_weight * _sigma((idx[after] - right) / (width - 1))
    return weight, window_of


@dataclass(frozen=True)
class SweepResult:
    """The optimised threshold and corpus score of one detector under one profile."""

    profile: Profile
    threshold: float
    raw_score: float
    null_score: float
    perfect_score: float

    @property
    def normalized(self) -> float:
        return 100.0 * (self.raw_score - self.null_score) / (self.perfect_score - self.null_score)


def optimize_threshold(
    files: list[LabelledFile], scores: list[np.ndarray], profile: Profile
) -> SweepResult:
    """Sweep every distinct score as threshold and keep the best corpus score (highest on ties).

    Vectorised: rows from all files are sorted by descending score; each row's contribution
    when it becomes a detection is its weight if outside a window, or the increase of its
    window's best (earliest) detection weight; a cumulative sum over that order gives S(t).
    """
    all_scores, all_weights, all_windows = [], [], []
    n_windows = 0
    for item, score in zip(files, scores):
        weight, window_of = row_weights(item, profile)
        keep = slice(item.probation, item.n_rows)
        all_scores.append(np.asarray(score, dtype=np.float64)[keep])
        all_weights.append(weight[keep])
        all_windows.append(np.where(window_of[keep] >= 0, window_of[keep] + n_windows, -1))
        n_windows += len(item.windows)
    score = np.concatenate(all_scores)
    weight = np.concatenate(all_weights)
    window = np.concatenate(all_windows)
    counted_windows = np.unique(window[window >= 0]).size
    base = -profile.fn_weight * counted_windows

    order = np.argsort(-score, kind="stable")
    s_score, s_weight, s_window = score[order], weight[order], window[order]
    delta = np.where(s_window < 0, s_weight, 0.0)
    inside = np.flatnonzero(s_window >= 0)
    if inside.size:
        # Running maximum of weight per window, in sweep order (offset trick keeps segments apart).
        by_window = inside[np.lexsort((inside, s_window[inside]))]
        wid = s_window[by_window]
        offset = wid * 10.0 * (profile.tp_weight + 1.0)
        running = np.maximum.accumulate(s_weight[by_window] + offset) - offset
        first = np.r_[True, wid[1:] != wid[:-1]]
        previous = np.where(first, -profile.fn_weight, np.r_[0.0, running[:-1]])
        delta[by_window] = running - previous
    total = base + np.cumsum(delta)
    # Evaluate only after the last row of each group of equal scores.
    last_of_group = np.r_[s_score[1:] != s_score[:-1], True]
    candidates = np.r_[base, total[last_of_group]]
    thresholds = np.r_[NO_DETECTION_THRESHOLD, s_score[last_of_group]]
    best = int(np.argmax(candidates))  # first maximum is the highest threshold
    return SweepResult(
        profile=profile,
        threshold=float(thresholds[best]),
        raw_score=float(candidates[best]),
        null_score=-profile.fn_weight * n_windows,
        perfect_score=profile.tp_weight * n_windows,
    )


@dataclass(frozen=True)
class FileScore:
    """One file's score and row counts at a given threshold (NAB's per-file CSV columns)."""

    name: str
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int


def score_file(item: LabelledFile, score: np.ndarray, profile: Profile, threshold: float) -> FileScore:
    """Score one file at ``threshold`` as NAB's per-file results do."""
    weight, window_of = row_weights(item, profile)
    keep = slice(item.probation, item.n_rows)
    detected = np.asarray(score, dtype=np.float64)[keep] >= threshold
    weight, window_of = weight[keep], window_of[keep]
    total = float(weight[detected & (window_of < 0)].sum())
    for k in np.unique(window_of[window_of >= 0]):
        hits = weight[detected & (window_of == k)]
        total += float(hits.max()) if hits.size else -profile.fn_weight
    in_window = window_of >= 0
    return FileScore(
        name=item.name,
        score=total,
        tp=int((detected & in_window).sum()),
        tn=int((~detected & ~in_window).sum()),
        fp=int((detected & ~in_window).sum()),
        fn=int((~detected & in_window).sum()),
        total=int(detected.size),
    )


@dataclass(frozen=True)
class Corpus:
    """The NAB data files (values and timestamps) with their windows, in a stable order."""

    root: Path
    names: list[str]
    files: list[LabelledFile]

    def data_path(self, name: str) -> Path:
        return self.root / "data" / name


def load_corpus(root: str | Path) -> Corpus:
    """Load ``labels/combined_windows.json`` and map windows to rows of each data file."""
    from spyglass.insights.series_io import read_series

    root = Path(root)
    raw = json.loads((root / "labels" / "combined_windows.json").read_text())
    names = sorted(raw)
    files = []
    for name in names:
        series = read_series(root / "data" / name)
        files.append(LabelledFile(name, len(series), windows_to_rows(series.timestamps, raw[name])))
    return Corpus(root=root, names=names, files=files)


def read_result_scores(path: str | Path) -> np.ndarray:
    """Read the ``anomaly_score`` column of a NAB result file with one float parser."""
    from spyglass.insights.series_io import read_series

    return read_series(path, value_column="anomaly_score").values


def reference_path(root: Path, detector: str, name: str) -> Path:
    """Where a published detector's result file for data file ``name`` lives."""
    category, base = name.split("/")
    return root / "reference_results" / detector / category / f"{detector}_{base}"


def score_corpus(corpus: Corpus, scores: list[np.ndarray]) -> dict[str, SweepResult]:
    """Optimised threshold and normalised score in every profile."""
    return {name: optimize_threshold(corpus.files, scores, p) for name, p in PROFILES.items()}
