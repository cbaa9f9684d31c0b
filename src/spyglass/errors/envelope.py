"""Parsing Sentry envelopes (https://develop.sentry.dev/sdk/data-model/envelopes/).

An envelope is a JSON header line followed by items; each item is a JSON header line and a
payload, either ``length`` bytes long or running to the next newline. A malformed item is
reported and skipped; the items before it are kept. Only a broken envelope header or a
framing error that makes the rest unreadable stops parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


class EnvelopeError(ValueError):
    """The envelope cannot be read at all."""


@dataclass
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        value = self.headers.get("type")
        return value if isinstance(value, str) else ""

    def json(self) -> Any:
        return orjson.loads(self.payload)


@dataclass
class Envelope:
    headers: dict[str, Any]
    items: list[Item] = field(default_factory=list)
    #: Problems with individual items, for the client report and the logs.
    errors: list[str] = field(default_factory=list)


def _json_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(line) if line.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} is not a JSON object")
    return value


def parse_envelope(body: bytes) -> Envelope:
    newline = body.find(b"\n")
    header_line = body if newline < 0 else body[:newline]
    envelope = Envelope(_json_object(header_line, "envelope header"))
    pos = len(body) if newline < 0 else newline + 1
    n = 0
    while pos < len(body):
        end = body.find(b"\n", pos)
        line = body[pos:] if end < 0 else body[pos:end]
        pos = len(body) if end < 0 else end + 1
        if not line.strip():
            continue  # blank lines between items are tolerated
        n += 1
        try:
            headers = _json_object(line, f"item {n} header")
        except EnvelopeError as exc:
            # Without a readable header we cannot know where the payload ends.
            envelope.errors.append(str(exc))
            break
        length = headers.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                envelope.errors.append(f"item {n} has an invalid length {length!r}")
                break
            if pos + length > len(body):
                envelope.errors.append(f"item {n} is truncated")
                break
            payload = body[pos : pos + length]
            pos += length
            if pos < len(body) and body[pos : pos + 1] == b"\n":
                pos += 1
        else:
            end = body.find(b"\n", pos)
            payload = body[pos:] if end < 0 else body[pos:end]
            pos = len(body) if end < 0 else end + 1
        envelope.items.append(Item(headers, payload))
    return envelope
