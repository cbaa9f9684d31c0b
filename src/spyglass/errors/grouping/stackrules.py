"""Apply stack trace rules to an exception's frames: flip in-app and group flags, cap frames.

Rules run top to bottom, each over every frame, so a later rule sees the flags an earlier rule
set (``app:no +app`` then ``stack.function:std::* -app`` works as Sentry documents).
"""

from __future__ import annotations

from collections.abc import Sequence

from .frames import Frame
from .matchers import EventFacts, Matcher
from .rules import StacktraceRule

__all__ = ["apply_stacktrace_rules"]


def _frame_matches(matchers: Sequence[Matcher], frame: Frame) -> bool:
    for matcher in matchers:
        if not matcher.matches_frame(frame):
            return False
    return True


def apply_stacktrace_rules(
    frames: list[Frame], rules: Sequence[StacktraceRule], facts: EventFacts
) -> int:
    """Update ``frames`` in place; return the max-frames limit in force (0: no limit)."""
    max_frames = 0
    for rule in rules:
        # Event-level matchers (family, error.type...) decide once for all frames.
        if not all(m.matches_event(facts) for m in rule.matchers if not m.on_frame):
            continue
        frame_matchers = [m for m in rule.matchers if m.on_frame]
        for index, frame in enumerate(frames):
            if not _frame_matches(frame_matchers, frame):
                continue
            if rule.max_frames is not None:
                max_frames = rule.max_frames
            for action in rule.actions:
                if action.scope == "^":  # toward the crash: later in the list
                    targets = frames[index + 1 :]
                elif action.scope == "v":
                    targets = frames[:index]
                else:
                    targets = [frame]
                for target in targets:
                    setattr(target, "in_app" if action.flag == "app" else "group", action.value)
    return max_frames
