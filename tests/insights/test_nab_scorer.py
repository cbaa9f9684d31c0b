"""Our NAB scorer reproduces NAB's official scores of the published reference detectors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from spyglass.insights import nab

# From REFERENCE_SCORES.md: (threshold, raw S, normalised) per detector and profile.
REFERENCE = {
    ("numenta", "standard"): (0.544449877418, 25.637885, 68.578178),
    ("numenta", "reward_low_FP_rate"): (0.602095149663, 16.843714, 62.205590),
    ("numenta", "reward_low_FN_rate"): (0.544449877418, 12.637885, 72.771925),
    ("windowedGaussian", "standard"): (0.999999999999, -28.900583, 29.057549),
    ("windowedGaussian", "reward_low_FP_rate"): (1.0, -48.591586, 14.788706),
    ("windowedGaussian", "reward_low_FN_rate"): (0.999999999999, -63.900583, 35.796820),
    ("null", "standard"): (1.1, -69.0, 0.0),
    ("null", "reward_low_FP_rate"): (1.1, -69.0, 0.0),
    ("null", "reward_low_FN_rate"): (1.1, -138.0, 0.0),
}


@pytest.fixture(scope="module")
def corpus(nab_dir):
    return nab.load_corpus(nab_dir)


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian", "null"])
def test_reference_scores_reproduced(corpus, detector):
    scores = [nab.read_result_scores(nab.reference_path(corpus.root, detector, n))
              for n in corpus.names]
    for profile, result in nab.score_corpus(corpus, scores).items():
        threshold, raw, normalised = REFERENCE[(detector, profile)]
        assert abs(result.normalized - normalised) < 0.5
        assert result.threshold == pytest.approx(threshold, abs=1e-12)
        assert result.raw_score == pytest.approx(raw, abs=1e-5)


def test_per_file_scores_match(corpus):
    scores = {n: nab.read_result_scores(nab.reference_path(corpus.root, "numenta", n))
              for n in corpus.names}
    path = corpus.root / "reference_results" / "numenta" / "numenta_standard_scores.csv"
    files = {f.name: f for f in corpus.files}
    with open(path) as handle:
        for row in csv.DictReader(handle):
            if row["File"] not in files:  # the Totals row
                continue
            got = nab.score_file(files[row["File"]], scores[row["File"]],
                                 nab.PROFILES["standard"], float(row["Threshold"]))
            assert got.score == pytest.approx(float(row["Score"]), abs=1e-6)
            assert (got.tp, got.tn, got.fp, got.fn, got.total) == tuple(
                int(row[k]) for k in ("TP", "TN", "FP", "FN", "Total_Count"))


def test_weights_follow_the_rules():
    item = nab.LabelledFile("x", 1000, [(400, 499)])
    weight, window_of = nab.row_weights(item, nab.PROFILES["standard"])
    assert weight[400] == pytest.approx(1.0)  # left edge earns exactly tpWeight
    assert np.all(np.diff(weight[400:500]) < 0)  # earlier is better
    assert weight[399] == pytest.approx(-0.11)
    assert -0.11 < weight[500] < 0  # softened just after the window
    assert weight[999] == pytest.approx(-0.11)  # y > 3 far after it
    assert set(window_of[400:500]) == {0}


def test_sweep_picks_highest_threshold_on_ties():
    item = nab.LabelledFile("x", 1000, [(400, 499)])
    score = np.zeros(1000)
    score[400] = 0.9  # one perfect detection at 0.9; 0.5 adds nothing more
    score[410] = 0.5
    result = nab.optimize_threshold([item], [score], nab.PROFILES["standard"])
    assert result.threshold == 0.9
    assert result.raw_score == pytest.approx(1.0)
