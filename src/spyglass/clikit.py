"""Pieces shared by every ``spyglass`` subcommand (each feature's commands use them too)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from spyglass.config import Settings, load_settings


def data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--data-dir`` to a command and pass it loaded ``settings`` instead."""

    @click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Data directory (default ./spyglass-data, or $SPYGLASS_DATA_DIR).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, data_dir: str | None, **kwargs: Any) -> Any:
        settings: Settings = load_settings(data_dir)
        return func(*args, settings=settings, **kwargs)

    return wrapper
