"""Events shaped as the SDKs send them, for the grouping tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest


def frame(module: str, function: str, lineno: int = 10, in_app: bool | None = True, **extra: Any) -> dict:
    out: dict[str, Any] = {"module": module, "function": function, "lineno": lineno,
                           "filename": module.replace(".", "/") + ".py", **extra}
    if in_app is not None:
        out["in_app"] = in_app
    return out


def exception_event(type_: str, value: str, frames: list[dict], **extra: Any) -> dict:
    return {
        "platform": "python",
        "level": "error",
        "exception": {"values": [{"type": type_, "value": value, "stacktrace": {"frames": frames}}]},
        **extra,
    }


@pytest.fixture(name="frame")
def frame_fixture():
    """``frame(module, function, lineno=10, in_app=True, **extra)`` builds a Python frame."""
    return frame


@pytest.fixture(name="exception_event")
def exception_event_fixture():
    """``exception_event(type, value, frames, **extra)`` builds a one-exception event."""
    return exception_event


@pytest.fixture
def checkout_error() -> dict:
    return exception_event(
        "ValueError",
        "invalid amount '12x' for order 1234",
        [
            frame("flask.app", "wsgi_app", 1500, in_app=False),
            frame("shop.views", "checkout", 42),
            frame("shop.billing", "parse_amount", 17),
            frame("decimal", "__new__", 300, in_app=False),
        ],
        transaction="/checkout",
    )


@pytest.fixture
def clone():
    return copy.deepcopy
