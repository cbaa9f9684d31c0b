"""Shared fixtures for the insights tests."""

from __future__ import annotations

from pathlib import Path

import pytest

NAB_DIR = Path("/work/shared/data/nab")


@pytest.fixture(scope="session")
def nab_dir() -> Path:
    if not (NAB_DIR / "labels" / "combined_windows.json").exists():
        pytest.skip("NAB development subset not present")
    return NAB_DIR
