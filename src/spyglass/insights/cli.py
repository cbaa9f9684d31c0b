"""``spyglass insights``: run the anomaly detector or the forecaster on a CSV file.

numpy and matplotlib are imported inside the commands so ``spyglass --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from spyglass.clikit import data_dir_option


@click.group(name="insights")
def insights() -> None:
    """Anomaly detection and forecasting on timestamp,value CSV files."""


@insights.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="CSV to write: timestamp,value,anomaly_score (NAB results format).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also draw the series with its anomalies to this PNG.")
@click.option("--threshold", type=float, default=0.6404, show_default=True,
              help="Score at which --plot marks a point as an anomaly.")
@data_dir_option
def detect(file: str, output: str, plot: str | None, threshold: float, settings: Any) -> None:
    """Score every row of FILE in arrival order with the streaming detector."""
    import numpy as np
    from rich.progress import Progress

    from spyglass.insights.detector import BatchDetector
    from spyglass.insights.series_io import read_series, write_rows

    series = read_series(file)
    detector = BatchDetector(1)
    one = np.zeros(1, dtype=np.int64)
    times, values = series.seconds, series.values
    scores = np.zeros(len(series))
    with Progress(transient=True) as progress:
        task = progress.add_task("scoring", total=len(series))
        for i in range(len(series)):
            scores[i] = detector.update(one, times[i : i + 1], values[i : i + 1]).score[0]
            if i % 500 == 0:
                progress.update(task, completed=i)
    write_rows(output, ["timestamp", "value", "anomaly_score"],
               [series.timestamps, values, scores])
    flagged = int((scores >= threshold).sum())
    click.echo(f"scored {len(series)} points, {flagged} at or above {threshold}; wrote {output}")
    if plot:
        _plot_detection(plot, series.timestamps, values, scores, threshold)
        click.echo(f"wrote {plot}")


@insights.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--horizon", "-n", required=True, type=click.IntRange(min=1),
              help="Number of future steps to forecast.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="CSV to write: timestamp,forecast,lower_80,upper_80.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also draw history, forecast and interval to this PNG.")
@data_dir_option
def forecast(file: str, horizon: int, output: str, plot: str | None, settings: Any) -> None:
    """Forecast the next N steps of FILE with an 80% prediction interval."""
    import numpy as np

    from spyglass.insights.forecast import forecast as run_forecast
    from spyglass.insights.series_io import read_series, write_rows

    series = read_series(file)
    result = run_forecast(series.seconds, series.values, horizon, coverage=0.8)
    stamps = result.timestamps.astype(np.int64).astype("datetime64[s]")
    write_rows(output, ["timestamp", "forecast", "lower_80", "upper_80"],
               [stamps, result.mean, result.lower, result.upper])
    click.echo(f"forecast {horizon} steps with {result.model}; wrote {output}")
    if plot:
        _plot_forecast(plot, series.timestamps, series.values, stamps, result)
        click.echo(f"wrote {plot}")


def _plot_detection(path: str, stamps: Any, values: Any, scores: Any, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(12, 6),
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot(stamps, values, lw=0.8, color="tab:blue")
    hits = scores >= threshold
    top.scatter(stamps[hits], values[hits], color="tab:red", s=25, zorder=3, label="anomaly")
    top.legend(loc="upper left")
    bottom.plot(stamps, scores, lw=0.8, color="tab:gray")
    bottom.axhline(threshold, color="tab:red", lw=0.8, ls="--")
    bottom.set_ylabel("score")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_forecast(path: str, stamps: Any, values: Any, future: Any, result: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5))
    tail = slice(max(0, len(values) - 4 * len(future)), None)
    ax.plot(stamps[tail], values[tail], lw=0.8, color="tab:blue", label="history")
    ax.plot(future, result.mean, lw=1.0, color="tab:orange", label="forecast")
    ax.fill_between(future, result.lower, result.upper, color="tab:orange", alpha=0.25,
                    label="80% interval")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
