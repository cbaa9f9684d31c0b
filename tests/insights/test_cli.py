"""``spyglass insights detect`` and ``forecast`` through click's test runner."""

from __future__ import annotations

import csv

import numpy as np
from click.testing import CliRunner

from spyglass.insights.cli import insights


def write_series(path, n=1500):
    t = np.datetime64("2024-01-01T00:00:00") + np.arange(n) * np.timedelta64(5, "m")
    v = 10 + np.sin(np.arange(n) / 20.0)
    v[1200] = 40
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for a, b in zip(t, v):
            writer.writerow([str(a).replace("T", " "), b])


def test_detect_writes_nab_results(tmp_path):
    src, out, png = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "out.png"
    write_series(src)
    result = CliRunner().invoke(insights, ["detect", str(src), "--output", str(out),
                                           "--plot", str(png), "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == 1500
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert int(np.argmax(scores)) == 1200
    assert png.stat().st_size > 1000


def test_forecast_writes_horizon(tmp_path):
    src, out, png = tmp_path / "in.csv", tmp_path / "f.csv", tmp_path / "f.png"
    write_series(src)
    result = CliRunner().invoke(insights, ["forecast", str(src), "--horizon", "12", "--output",
                                           str(out), "--plot", str(png), "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["timestamp", "forecast", "lower_80", "upper_80"]
    assert len(rows) == 12
    assert rows[0]["timestamp"] == "2024-01-06 05:00:00"
    assert all(float(r["lower_80"]) <= float(r["forecast"]) <= float(r["upper_80"]) for r in rows)
