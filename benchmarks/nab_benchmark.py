"""NAB benchmark: score Spyglass's detector on the NAB development subset, beside the references.

Checks first that our scorer reproduces the official scores of the published detectors whose
result files ship with the subset, then runs our detector (one parameter set, no labels) over
all 41 series in batched streaming mode and prints the table for all three profiles.

Run: ``.venv/bin/python benchmarks/nab_benchmark.py [--nab-dir DIR] [--per-file]
[--set NAME=VALUE ...]``. ``--per-file`` prints each file's score, false positives and where
in each window the first detection fell (standard profile); ``--set`` overrides a detector
parameter (for sensitivity checks; the published figures use the defaults).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from spyglass.insights import nab
from spyglass.insights.detector import DetectorParams, score_many
from spyglass.insights.series_io import read_series

DEFAULT_NAB = Path("/work/shared/data/nab")
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def published_scores(path: Path) -> list[tuple[str, list[float]]]:
    """The normalised-score table of REFERENCE_SCORES.md, as (detector, [3 scores])."""
    rows = []
    for line in path.read_text().splitlines():
        m = re.match(r"\|\s*([^|]+?)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|$", line)
        if m:
            rows.append((m.group(1), [float(m.group(i)) for i in (2, 3, 4)]))
    return rows


def print_per_file(corpus: nab.Corpus, scores: list, threshold: float) -> None:
    """Each file's score at the corpus threshold, its false positives, and for each window
    the offset of the first detection from the window's start (out of its width) or "miss"."""
    profile = nab.PROFILES["standard"]
    print(f"\nPer file (standard, threshold {threshold:.6f}):")
    for item, score in zip(corpus.files, scores):
        result = nab.score_file(item, score, profile, threshold)
        weight, window_of = nab.row_weights(item, profile)
        detected = score >= threshold
        detected[: item.probation] = False
        fp = detected & (window_of < 0)
        cells = []
        for left, right in item.windows:
            hits = detected[left : right + 1].nonzero()[0]
            cells.append(f"{hits[0]}/{right - left + 1}" if hits.size else "miss")
        print(f"  {result.score:7.3f}  FP {int(fp.sum()):3d} ({weight[fp].sum():6.2f})  "
              f"windows [{', '.join(cells)}]  {item.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nab-dir", type=Path, default=DEFAULT_NAB)
    parser.add_argument("--per-file", action="store_true", help="per-file breakdown (standard)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a DetectorParams field")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        name, value = item.split("=", 1)
        overrides[name] = type(getattr(DetectorParams, name))(float(value))
    params = DetectorParams(**overrides)
    corpus = nab.load_corpus(args.nab_dir)

    print("Scorer check (ours vs REFERENCE_SCORES.md):")
    for detector in ("numenta", "windowedGaussian", "null"):
        scores = [nab.read_result_scores(nab.reference_path(corpus.root, detector, n))
                  for n in corpus.names]
        results = nab.score_corpus(corpus, scores)
        cells = ", ".join(f"{p} {results[p].normalized:.2f} (t={results[p].threshold:.12g})"
                          for p in PROFILES)
        print(f"  {detector:17s} {cells}")

    series = [read_series(corpus.data_path(n)) for n in corpus.names]
    start = time.perf_counter()
    ours = score_many([(s.seconds, s.values) for s in series], params)
    elapsed = time.perf_counter() - start
    results = nab.score_corpus(corpus, ours)
    points = sum(len(s) for s in series)
    print(f"\nSpyglass detector: {points} points in {elapsed:.1f} s (41 series side by side)")
    for p in PROFILES:
        r = results[p]
        print(f"  {p:20s} threshold {r.threshold:.6f}  raw S {r.raw_score:9.4f}  "
              f"normalised {r.normalized:.2f}")
    if args.per_file:
        print_per_file(corpus, ours, results["standard"].threshold)

    table = published_scores(args.nab_dir / "REFERENCE_SCORES.md")
    table.append(("**Spyglass (ours)**", [results[p].normalized for p in PROFILES]))
    table.sort(key=lambda row: -row[1][0])
    print("\n| Detector | Standard | Reward low FP | Reward low FN |")
    print("|---|---:|---:|---:|")
    for name, values in table:
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    best = {p: max(v[i] for n, v in table if "ours" not in n) for i, p in enumerate(PROFILES)}
    for i, p in enumerate(PROFILES):
        mine = results[p].normalized
        verdict = "beats" if mine > best[p] else "does NOT beat"
        print(f"{p}: ours {mine:.2f} {verdict} the best published {best[p]:.2f}")


if __name__ == "__main__":
    main()
