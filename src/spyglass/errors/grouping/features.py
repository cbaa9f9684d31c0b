"""What similarity compares: weighted tokens for TF-IDF, and a short text for embeddings.

Both come from the same reading of the event as the hash (``Analysis``), so stack trace rules
and in-app flags shape similarity exactly as they shape grouping. Data never reaches them: the
exception value and the message are parameterized first.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from .config import GroupingConfig
from .group import Analysis
from .parameterize import parameterize

__all__ = ["features", "features_text"]

_WORD = re.compile(r"<[a-z]+>|[a-z_][a-z0-9_]+")
_MAX_WORDS = 40
_MAX_FRAMES = 12  # closest to the crash; deep framework stacks add noise, not evidence
_TEXT_FRAMES = 4  # embeddings blur with length: the frames nearest the crash say the most

# Weights per kind of token, before IDF. The type of the raised exception and the frame that
# raised it say most about the crash site; value words help tell apart sites that share both
# (validation errors raised from one helper), and the caller frames help a little.
W_TYPE_MAIN = 3.0
W_TYPE_CAUSE = 1.5
W_TOP_FRAME = 3.0
W_FRAME = 1.0
W_FRAME_PAIR = 0.7
W_MODULE = 0.5
W_WORD = 1.0
W_BIGRAM = 1.0
W_LOGGER = 1.0


def _words(text: str) -> list[str]:
    return _WORD.findall(parameterize(text).lower())[:_MAX_WORDS]


def _add(out: dict[str, float], token: str, weight: float) -> None:
    out[token] = out.get(token, 0.0) + weight


def _add_text(out: dict[str, float], prefix: str, text: str, scale: float) -> None:
    words = _words(text)
    for word in words:
        _add(out, f"{prefix}:{word}", W_WORD * scale)
    for first, second in itertools.pairwise(words):
        _add(out, f"{prefix}2:{first} {second}", W_BIGRAM * scale)


def _frames(analysis: Analysis, exc: Any) -> list[Any]:
    frames = exc.contributing(analysis.variant == "app-stacktrace")
    collapsed = []
    for frame in frames:
        if not collapsed or collapsed[-1].label != frame.label:
            collapsed.append(frame)
    return collapsed[-_MAX_FRAMES:]


def features(event: dict[str, Any], config: GroupingConfig | None = None) -> dict[str, float]:
    """Weighted tokens of an event: exception types, value words, frames, message words."""
    analysis = event if isinstance(event, Analysis) else Analysis(event, config)
    out: dict[str, float] = {}
    chain = [e for e in analysis.chain if e.type or e.value or e.frames]
    for position, exc in enumerate(chain):
        main = position == len(chain) - 1
        scale = 1.0 if main else 0.5
        if exc.type:
            _add(out, f"type:{exc.type}", W_TYPE_MAIN if main else W_TYPE_CAUSE)
        if exc.value:
            _add_text(out, "value", exc.value, scale)
        frames = _frames(analysis, exc)
        for frame in frames:
            _add(out, f"frame:{frame.label}", W_FRAME * scale)
            _add(out, f"module:{frame.name}", W_MODULE * scale)
        for caller, callee in itertools.pairwise(frames):
            _add(out, f"call:{caller.label}>{callee.label}", W_FRAME_PAIR * scale)
        if frames:
            _add(out, f"top:{frames[-1].label}", W_TOP_FRAME * scale)
    if not chain:
        message = analysis.template or analysis.formatted
        if message:
            _add_text(out, "message", message, 1.5)
        logger = analysis.logger
        if logger:
            _add(out, f"logger:{logger}", W_LOGGER)
    return out


def features_text(event: dict[str, Any], config: GroupingConfig | None = None) -> str:
    """The event as a few lines of text, for embedding models::

        KeyError: 'order <int> missing'
          at shop.orders in load_order
          at shop.api in get_order
    """
    analysis = event if isinstance(event, Analysis) else Analysis(event, config)
    lines: list[str] = []
    chain = [e for e in analysis.chain if e.type or e.value or e.frames]
    for exc in reversed(chain):  # the raised exception first: it matters most
        head = f"{exc.type}: {parameterize(exc.value)}" if exc.value else exc.type
        lines.append(head.strip())
        for frame in reversed(_frames(analysis, exc)[-_TEXT_FRAMES:]):
            lines.append(f"  at {frame.name} in {frame.function}")
    if not chain:
        message = analysis.template or analysis.formatted
        if analysis.logger:
            lines.append(f"{analysis.logger}: {parameterize(message)}")
        else:
            lines.append(parameterize(message))
    return "\n".join(lines)
