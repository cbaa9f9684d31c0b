"""Read and write the ``timestamp,value[,...]`` CSV files the insights commands work on.

The format is NAB's: a header row, then one row per point with a timestamp such as
``2014-04-10 07:15:00`` and a float value. Row order is kept as given, because a streaming
detector must see points in arrival order even when a clock steps back.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Series:
    """One univariate series: timestamps (``datetime64[s]``) and float values, in file order."""

    timestamps: np.ndarray
    values: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def seconds(self) -> np.ndarray:
        """Timestamps as float seconds since the Unix epoch."""
        return self.timestamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)


def read_series(path: str | Path, value_column: str = "value") -> Series:
    """Read a CSV with a ``timestamp`` column and ``value_column``; other columns are kept as text."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for row in reader if row]
    index = {name.strip(): i for i, name in enumerate(header)}
    if "timestamp" not in index or value_column not in index:
        raise ValueError(f"{path}: need columns 'timestamp' and '{value_column}', got {header}")
    stamps = np.array([row[index["timestamp"]].strip() for row in rows], dtype="datetime64[s]")
    values = np.array([_to_float(row[index[value_column]]) for row in rows], dtype=np.float64)
    columns = {
        name: np.array([row[i] for row in rows])
        for name, i in index.items()
        if name not in ("timestamp", value_column)
    }
    return Series(timestamps=stamps, values=values, columns=columns)


def write_rows(path: str | Path, header: list[str], columns: list[np.ndarray]) -> None:
    """Write equal-length columns as CSV rows; datetimes print as ``YYYY-MM-DD HH:MM:SS``."""
    texts = []
    for column in columns:
        if np.issubdtype(column.dtype, np.datetime64):
            texts.append([str(v).replace("T", " ") for v in column.astype("datetime64[s]")])
        elif np.issubdtype(column.dtype, np.floating):
            texts.append([repr(float(v)) for v in column])
        else:
            texts.append([str(v) for v in column])
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(zip(*texts))


def _to_float(text: str) -> float:
    # Empty cells become NaN so a gap in the file is a gap in the series, not a crash.
    text = text.strip()
    return float(text) if text else float("nan")
