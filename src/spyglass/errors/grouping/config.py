"""A project's grouping configuration: its fingerprint rules and stack trace rules."""

from __future__ import annotations

from dataclasses import dataclass

from .rules import FingerprintRule, StacktraceRule, parse_fingerprint_rules, parse_stacktrace_rules

__all__ = ["GroupingConfig"]


@dataclass(frozen=True)
class GroupingConfig:
    """Parsed rules, built once per project (and again when its settings change)."""

    fingerprint_rules: tuple[FingerprintRule, ...] = ()
    stacktrace_rules: tuple[StacktraceRule, ...] = ()

    @classmethod
    def from_text(cls, fingerprint_rules: str = "", stacktrace_rules: str = "") -> GroupingConfig:
        """Parse both rule texts as stored in project settings; raises ``RuleSyntaxError``."""
        return cls(
            tuple(parse_fingerprint_rules(fingerprint_rules)),
            tuple(parse_stacktrace_rules(stacktrace_rules)),
        )
