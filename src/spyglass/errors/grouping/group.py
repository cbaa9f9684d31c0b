"""Compute an event's grouping hash, in Sentry's documented order, with the reasons why.

1. A fingerprint: from the first matching server-side fingerprint rule, else the one the SDK
   sent. ``{{ default }}`` in it stands for the default grouping below.
2. Else the exception chain: every exception's type plus its in-app frames (module or file,
   and function; never line numbers). With no in-app frame anywhere, all frames count.
   Frames repeated back to back (recursion) count once; frames a rule marked ``-group``
   don't count; an exception without frames counts its parameterized value instead.
3. Else the exception types and parameterized values, when no exception has frames.
4. Else the parameterized message (the logging template when the SDK sent one).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from .config import GroupingConfig
from .event import exceptions, family_of, frames_of, message_of, tags_of, text
from .frames import Frame, make_frames
from .matchers import EventFacts
from .parameterize import parameterize
from .rules import VARIABLE_PATTERN as _VARIABLE
from .rules import VARIABLES, FingerprintRule
from .stackrules import apply_stacktrace_rules

__all__ = ["VARIANTS", "Analysis", "Grouping", "group_event"]

VARIANTS = (
    "custom-fingerprint",
    "app-stacktrace",
    "system-stacktrace",
    "exception",
    "message",
    "fallback",
)
_TITLE_LIMIT = 200
_DEFAULT = "{{ default }}"


@dataclass(frozen=True)
class Grouping:
    """Where an event belongs and why.

    ``hash`` (32 hex digits) is the issue key within a project. ``components`` are the
    values that went into the hash, one per line, as the issue page's "why grouped" shows
    them. ``fingerprint`` is the custom fingerprint after variable expansion, if one applied.
    """

    hash: str
    variant: str
    components: list[str]
    title: str
    culprit: str
    metadata: dict[str, Any]
    fingerprint: list[str] | None = field(default=None)


class ChainedException:
    """One exception of the chain with its frames after the stack trace rules ran."""

    __slots__ = ("frames", "max_frames", "type", "value")

    def __init__(self, raw: dict[str, Any], javascript: bool) -> None:
        self.type = text(raw.get("type"))
        self.value = text(raw.get("value"))
        self.frames: list[Frame] = make_frames(frames_of(raw), javascript)
        self.max_frames = 0

    def contributing(self, app_only: bool) -> list[Frame]:
        if app_only:
            frames = [f for f in self.frames if f.in_app and f.group]
        else:
            frames = [f for f in self.frames if f.group]
        if self.max_frames:
            frames = frames[-self.max_frames :]
        return frames


def _digest(values: list[str]) -> str:
    data = "\n".join(values).encode("utf-8", "surrogatepass")
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _first_line(value: str, limit: int = _TITLE_LIMIT) -> str:
    line = value.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _stack_components(chain: list[ChainedException], app_only: bool) -> list[str]:
    components: list[str] = []
    for exc in chain:
        if exc.type:
            components.append(f"type: {exc.type}")
        previous = None
        labels = 0
        for frame in exc.contributing(app_only):
            label = frame.label
            if label != previous:  # recursion: a frame repeating the one before counts once
                components.append(f"frame: {label}")
                previous = label
                labels += 1
        if not labels and exc.value:
            components.append(f"value: {parameterize(exc.value)}")
    return components


def _exception_components(chain: list[ChainedException]) -> list[str]:
    components: list[str] = []
    for exc in chain:
        if exc.type:
            components.append(f"type: {exc.type}")
        if exc.value:
            components.append(f"value: {parameterize(exc.value)}")
    return components


def _crashing_frame(chain: list[ChainedException]) -> Frame | None:
    """The topmost in-app frame of the last exception (or its topmost frame)."""
    for exc in reversed(chain):
        for frame in reversed(exc.frames):
            if frame.in_app:
                return frame
    for exc in reversed(chain):
        if exc.frames:
            return exc.frames[-1]
    return None


class Analysis:
    """An event read once: its exception chain and frames after the stack trace rules, its
    message, its default grouping, and what titles, variables and similarity need from it."""

    def __init__(self, event: dict[str, Any], config: GroupingConfig | None) -> None:
        javascript = family_of(event) == "javascript"
        raw_chain = exceptions(event)
        chain = [ChainedException(raw, javascript) for raw in raw_chain]
        self.facts: EventFacts | None = None
        if config is not None and config.stacktrace_rules and chain:
            self.facts = EventFacts(event)
            for exc, raw in zip(chain, raw_chain):
                exc.max_frames = apply_stacktrace_rules(
                    exc.frames, config.stacktrace_rules, self.facts.for_exception(raw)
                )
        self.chain = chain
        self.template, self.formatted = message_of(event)
        self.logger = text(event.get("logger"))
        self.crashing = _crashing_frame(chain)
        chain = [exc for exc in chain if exc.type or exc.value or exc.frames]
        if any(f.in_app and f.group for exc in chain for f in exc.frames):
            self.variant, self.components = "app-stacktrace", _stack_components(chain, True)
        elif any(f.group for exc in chain for f in exc.frames):
            self.variant, self.components = "system-stacktrace", _stack_components(chain, False)
        elif chain:
            self.variant, self.components = "exception", _exception_components(chain)
        elif self.template or self.formatted:
            message = parameterize(self.template or self.formatted)
            self.variant, self.components = "message", [f"message: {message}"]
        else:
            self.variant, self.components = "fallback", ["fallback: no exception or message"]
        self.main = chain[-1] if chain else None


def _rule_matches(rule: FingerprintRule, facts: EventFacts, frames: list[Frame]) -> bool:
    for matcher in rule.event_matchers:
        if not matcher.matches_event(facts):
            return False
    if not rule.frame_matchers:
        return True
    # All frame matchers of a rule must hold for one and the same frame.
    return any(all(m.matches_frame(f) for m in rule.frame_matchers) for f in frames)


def _match_fingerprint_rule(
    config: GroupingConfig, defaults: Analysis, event: dict[str, Any]
) -> FingerprintRule | None:
    facts = defaults.facts or EventFacts(event)
    defaults.facts = facts
    frames = [f for exc in defaults.chain for f in exc.frames]
    for rule in config.fingerprint_rules:
        if _rule_matches(rule, facts, frames):
            return rule
    return None


def _variable(name: str, event: dict[str, Any], defaults: Analysis) -> str:
    main, frame = defaults.main, defaults.crashing
    if name == "transaction":
        value = text(event.get("transaction"))
    elif name == "error.type":
        value = main.type if main else ""
    elif name == "error.value":
        value = main.value if main else ""
    elif name == "stack.function":
        value = frame.function if frame else ""
    elif name == "stack.module":
        value = frame.module if frame else ""
    elif name == "stack.abs_path":
        value = (frame.abs_path or frame.filename) if frame else ""
    elif name == "stack.filename":
        value = (frame.filename or frame.abs_path) if frame else ""
    elif name == "stack.package":
        value = frame.package if frame else ""
    elif name == "logger":
        value = text(event.get("logger"))
    elif name == "level":
        value = text(event.get("level"))
    elif name == "message":
        value = defaults.formatted or (main.value if main else "")
    elif name.startswith("tags."):
        value = tags_of(event).get(name[5:], "")
    else:
        value = ""
    return value or f"<no-{name}>"


def _expand(value: str, event: dict[str, Any], defaults: Analysis) -> list[str]:
    """A fingerprint entry as hash values: ``{{ default }}`` becomes the default components."""
    found = _VARIABLE.fullmatch(value.strip())
    if found is None:
        return [f"fingerprint: {value}"]
    name = VARIABLES.get(found.group(1), found.group(1))
    if name == "default":
        return list(defaults.components)
    return [f"fingerprint: {_variable(name, event, defaults)}"]


def _expand_title(template: str, event: dict[str, Any], defaults: Analysis) -> str:
    def replace(found: re.Match[str]) -> str:
        return _variable(VARIABLES.get(found.group(1), found.group(1)), event, defaults)

    return _VARIABLE.sub(replace, template)


def _title(defaults: Analysis) -> str:
    main = defaults.main
    if main is not None:
        if main.type and main.value:
            return _first_line(f"{main.type}: {main.value}")
        return _first_line(main.type or main.value) or "<unlabeled event>"
    return _first_line(defaults.formatted or defaults.template) or "<unlabeled event>"


def _culprit(event: dict[str, Any], defaults: Analysis) -> str:
    frame = defaults.crashing
    if frame is not None and frame.in_app:
        return frame.label
    transaction = text(event.get("transaction"))
    if transaction:
        return transaction
    if frame is not None:
        return frame.label
    return text(event.get("logger"))


def _metadata(defaults: Analysis, title: str) -> dict[str, Any]:
    main, frame = defaults.main, defaults.crashing
    if main is None:
        return {"title": title}
    metadata: dict[str, Any] = {"type": main.type, "value": main.value}
    if frame is not None:
        metadata["filename"] = frame.filename or frame.abs_path
        metadata["function"] = frame.function
    return metadata


def group_event(event: dict[str, Any], config: GroupingConfig | None = None) -> Grouping:
    """Group one normalized Sentry event (a dict as the SDKs send it). Never raises on bad data."""
    if not isinstance(event, dict):
        event = {}
    defaults = Analysis(event, config)
    title = _title(defaults)
    metadata = _metadata(defaults, title)
    culprit = _culprit(event, defaults)

    rule = None
    if config is not None and config.fingerprint_rules:
        rule = _match_fingerprint_rule(config, defaults, event)
    if rule is not None:
        fingerprint = [str(v) for v in rule.fingerprint]
        reason = [f"fingerprint rule (line {rule.line}): {rule}"]
    else:
        raw = event.get("fingerprint")
        fingerprint = [text(v) for v in raw] if isinstance(raw, list) and raw else []
        reason = ["fingerprint sent by the SDK"]

    if not fingerprint or [v.replace(" ", "") for v in fingerprint] == ["{{default}}"]:
        return Grouping(_digest(defaults.components), defaults.variant, list(defaults.components),
                        title, culprit, metadata)

    values = [part for value in fingerprint for part in _expand(value, event, defaults)]
    if rule is not None and rule.title is not None:
        title = metadata["title"] = _expand_title(rule.title, event, defaults)
    return Grouping(_digest(values), "custom-fingerprint", reason + values, title, culprit,
                    metadata, fingerprint=fingerprint)
