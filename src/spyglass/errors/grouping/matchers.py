"""The matchers of Sentry's grouping rules (``error.type:Foo``, ``stack.module:app.*``...).

A matcher tests either the event (its exceptions, message, logger, level, tags, family) or a
single stack frame. Case sensitivity and glob flavour follow Sentry's documentation per key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .event import exceptions, family_of, message_of, tags_of, text
from .frames import Frame
from .glob import compile_glob

__all__ = ["FRAME_KEYS", "EventFacts", "Matcher", "UnknownMatcher", "make_matcher"]

# alias -> canonical key
_ALIASES = {
    "type": "error.type",
    "value": "error.value",
    "mechanism": "error.mechanism",
    "path": "stack.abs_path",
    "module": "stack.module",
    "function": "stack.function",
    "package": "stack.package",
}
# canonical key -> (reads a frame?, path glob?, ignore case?)
_KEYS: dict[str, tuple[bool, bool, bool]] = {
    "error.type": (False, False, False),
    "error.value": (False, False, True),
    "error.mechanism": (False, False, False),
    "message": (False, False, True),
    "logger": (False, False, False),
    "level": (False, False, True),
    "release": (False, False, False),
    "transaction": (False, False, False),
    "family": (False, False, True),
    "stack.abs_path": (True, True, True),
    "stack.module": (True, False, False),
    "stack.function": (True, False, False),
    "stack.package": (True, True, True),
    "app": (True, False, True),
}
FRAME_KEYS = frozenset(k for k, (frame, _, _) in _KEYS.items() if frame)


class UnknownMatcher(ValueError):
    """The rule names a matcher this module does not know."""


class EventFacts:
    """The event-level values matchers compare against, read once per event."""

    __slots__ = (
        "family",
        "level",
        "logger",
        "mechanisms",
        "messages",
        "release",
        "tags",
        "transaction",
        "types",
        "values",
    )

    def __init__(self, event: dict[str, Any]) -> None:
        chain = exceptions(event)
        self.types = [text(e.get("type")) for e in chain]
        self.values = [text(e.get("value")) for e in chain]
        self.mechanisms = [
            text(e["mechanism"].get("type")) for e in chain if isinstance(e.get("mechanism"), dict)
        ]
        template, formatted = message_of(event)
        # Sentry's message matcher also looks at exception values: the two are hard to tell
        # apart across SDKs.
        self.messages = [m for m in {template, formatted} if m] + self.values
        self.logger = text(event.get("logger"))
        self.level = text(event.get("level"))
        self.tags = tags_of(event)
        self.family = family_of(event)
        self.release = text(event.get("release"))
        self.transaction = text(event.get("transaction"))

    def for_exception(self, exception: dict[str, Any]) -> EventFacts:
        """A copy whose exception matchers see only ``exception`` (for stack trace rules)."""
        facts = object.__new__(EventFacts)
        for name in EventFacts.__slots__:
            setattr(facts, name, getattr(self, name))
        facts.types = [text(exception.get("type"))]
        facts.values = [text(exception.get("value"))]
        mechanism = exception.get("mechanism")
        facts.mechanisms = [text(mechanism.get("type"))] if isinstance(mechanism, dict) else []
        return facts


@dataclass(frozen=True)
class Matcher:
    """``[!]key:pattern``. ``on_frame`` matchers test one frame, the others the event."""

    key: str
    pattern: str
    negated: bool = False
    on_frame: bool = False
    _test: Callable[[str], bool] = field(repr=False, compare=False, default=lambda _: False)

    def __str__(self) -> str:
        pattern = self.pattern
        if not pattern or any(c in pattern for c in ' "\t'):
            pattern = '"' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{'!' if self.negated else ''}{self.key}:{pattern}"

    def matches_event(self, facts: EventFacts) -> bool:
        return self._any(self._event_values(facts)) != self.negated

    def matches_frame(self, frame: Frame) -> bool:
        key = self.key
        if key == "stack.abs_path":
            hit = self._any((frame.abs_path, frame.filename))
        elif key == "stack.module":
            hit = self._test(frame.module)
        elif key == "stack.function":
            hit = self._test(frame.function)
        elif key == "stack.package":
            hit = self._test(frame.package)
        else:  # app
            hit = self._test("yes" if frame.in_app else "no")
        return hit != self.negated

    def _any(self, values: Any) -> bool:
        test = self._test
        return any(test(v) for v in values if v)

    def _event_values(self, facts: EventFacts) -> list[str]:
        key = self.key
        if key == "error.type":
            return facts.types
        if key == "error.value":
            return facts.values
        if key == "error.mechanism":
            return facts.mechanisms
        if key == "message":
            return facts.messages
        if key == "family":
            return [facts.family]
        if key.startswith("tags."):
            tag = facts.tags.get(key[5:])
            return [tag] if tag is not None else []
        return [getattr(facts, key.replace(".", "_"))]


def _family_test(pattern: str) -> Callable[[str], bool]:
    wanted = {p.strip().lower() for p in pattern.split(",") if p.strip()}
    return lambda family: family in wanted or "all" in wanted


def _app_test(pattern: str) -> Callable[[str], bool]:
    value = pattern.strip().lower()
    if value in ("yes", "true", "1"):
        return lambda v: v == "yes"
    if value in ("no", "false", "0"):
        return lambda v: v == "no"
    raise UnknownMatcher(f"app: expects yes or no, not {pattern!r}")


def make_matcher(key: str, pattern: str, negated: bool = False) -> Matcher:
    """Build a matcher; raise :class:`UnknownMatcher` for a key Sentry's syntax lacks."""
    key = _ALIASES.get(key, key)
    if key.startswith("tags.") and len(key) > 5:
        return Matcher(key, pattern, negated, False, compile_glob(pattern))
    if key not in _KEYS:
        raise UnknownMatcher(f"unknown matcher {key!r}")
    on_frame, path, ignore_case = _KEYS[key]
    if key == "family":
        test = _family_test(pattern)
    elif key == "app":
        test = _app_test(pattern)
    else:
        test = compile_glob(pattern, path=path, ignore_case=ignore_case)
    return Matcher(key, pattern, negated, on_frame, test)
