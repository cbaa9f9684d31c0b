"""Parse per-project grouping rules written in Sentry's documented syntax.

Fingerprint rules, one per line, assign a fingerprint to matching events::

    # all database outages are one issue
    error.type:DatabaseUnavailable -> system-down
    message:"*timeout*" -> timeouts, {{ default }}
    logger:my.package.* level:error -> error-logger, {{ logger }} title="Errors from {{ logger }}"

Stack trace rules, one per line, flip frame flags before grouping::

    stack.module:django.* -app
    family:javascript stack.abs_path:**/node_modules/** -app
    stack.function:log_error ^-group -group
    family:native max-frames=3

A line that cannot be parsed raises :class:`RuleSyntaxError` naming its line number, so the
settings page can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .matchers import Matcher, UnknownMatcher, make_matcher

__all__ = [
    "VARIABLES",
    "VARIABLE_PATTERN",
    "Action",
    "FingerprintRule",
    "Rule",
    "RuleSyntaxError",
    "StacktraceRule",
    "parse_fingerprint_rules",
    "parse_stacktrace_rules",
]


class RuleSyntaxError(ValueError):
    """A grouping rule that does not parse. ``line`` counts from 1."""

    def __init__(self, line: int, message: str, text: str = "") -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message
        self.text = text


# variable alias -> canonical name, for the right-hand side of fingerprint rules
VARIABLES: dict[str, str] = {
    "default": "default",
    "transaction": "transaction",
    "error.type": "error.type",
    "type": "error.type",
    "error.value": "error.value",
    "value": "error.value",
    "stack.function": "stack.function",
    "function": "stack.function",
    "stack.abs_path": "stack.abs_path",
    "path": "stack.abs_path",
    "stack.filename": "stack.filename",
    "stack.module": "stack.module",
    "module": "stack.module",
    "stack.package": "stack.package",
    "package": "stack.package",
    "logger": "logger",
    "level": "level",
    "message": "message",
}
VARIABLE_PATTERN = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")
_VARIABLE = VARIABLE_PATTERN
_MATCHER = re.compile(r'(!?)([A-Za-z_][\w.-]*):("(?:[^"\\]|\\.)*"|\S+)')
_ACTION = re.compile(r"([v^]?)([+-])(app|group)")
_VAR_ACTION = re.compile(r"([a-z][a-z-]*)=(\S+)")
_FP_TOKEN = re.compile(
    r'\s*(?:(?P<attr>[A-Za-z_]\w*)="(?P<attrval>(?:[^"\\]|\\.)*)"'
    r'|"(?P<quoted>(?:[^"\\]|\\.)*)"'
    r"|(?P<var>\{\{\s*[\w.-]+\s*\}\})"
    r"|(?P<bare>[^\s,\"{]+))\s*,?"
)
_STACK_EVENT_KEYS = frozenset({"family", "error.type", "error.value", "error.mechanism"})


@dataclass(frozen=True)
class FingerprintRule:
    """``matchers -> fingerprint [title="..."]``; variables are kept as ``{{ name }}``."""

    matchers: tuple[Matcher, ...]
    fingerprint: tuple[str, ...]
    title: str | None = None
    line: int = 0
    frame_matchers: tuple[Matcher, ...] = field(default=(), repr=False, compare=False)
    event_matchers: tuple[Matcher, ...] = field(default=(), repr=False, compare=False)

    def __str__(self) -> str:
        right = ", ".join(self.fingerprint)
        if self.title is not None:
            right += ' title="' + self.title.replace('"', '\\"') + '"'
        return " ".join(map(str, self.matchers)) + " -> " + right


@dataclass(frozen=True)
class Action:
    """``[^|v][+|-](app|group)``: set or unset a flag on the frame, above it, or below it."""

    flag: str  # "app" | "group"
    value: bool
    scope: str = ""  # "" this frame, "^" frames above it (toward the crash), "v" frames below

    def __str__(self) -> str:
        return f"{self.scope}{'+' if self.value else '-'}{self.flag}"


@dataclass(frozen=True)
class StacktraceRule:
    """``matchers actions``; ``max_frames`` limits how many frames group (0: all)."""

    matchers: tuple[Matcher, ...]
    actions: tuple[Action, ...]
    max_frames: int | None = None
    line: int = 0

    def __str__(self) -> str:
        parts = [str(m) for m in self.matchers] + [str(a) for a in self.actions]
        if self.max_frames is not None:
            parts.append(f"max-frames={self.max_frames}")
        return " ".join(parts)


Rule = FingerprintRule | StacktraceRule


def _lines(text: str) -> list[tuple[int, str]]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((number, line))
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _matchers(text: str, number: int, line: str) -> tuple[list[Matcher], str]:
    """Parse leading matchers; return them and the rest of the line."""
    matchers: list[Matcher] = []
    rest = text.strip()
    while rest:
        found = _MATCHER.match(rest)
        if not found:
            break
        negated, key, raw = found.groups()
        if raw.startswith('"') and (len(raw) < 2 or not raw.endswith('"')):
            raise RuleSyntaxError(number, "unterminated quoted string", line)
        try:
            matchers.append(make_matcher(key, _unquote(raw), bool(negated)))
        except UnknownMatcher as exc:
            raise RuleSyntaxError(number, str(exc), line) from None
        rest = rest[found.end() :].lstrip()
    return matchers, rest


def _split_arrow(line: str) -> int:
    """Index of the ``->`` outside quotes, or -1."""
    quoted = escaped = False
    for i, c in enumerate(line):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif not quoted and line.startswith("->", i):
            return i
    return -1


def _fingerprint(text: str, number: int, line: str) -> tuple[list[str], str | None]:
    values: list[str] = []
    title: str | None = None
    pos = 0
    text = text.strip()
    while pos < len(text):
        found = _FP_TOKEN.match(text, pos)
        if not found or found.end() == pos:
            raise RuleSyntaxError(number, f"cannot read the fingerprint at {text[pos:]!r}", line)
        pos = found.end()
        if found["attr"] is not None:
            if found["attr"] != "title":
                raise RuleSyntaxError(number, f"unknown attribute {found['attr']!r}", line)
            title = re.sub(r"\\(.)", r"\1", found["attrval"])
        elif found["var"] is not None:
            name = _VARIABLE.fullmatch(found["var"]).group(1)  # type: ignore[union-attr]
            canonical = VARIABLES.get(name)
            if canonical is None and name.startswith("tags.") and len(name) > 5:
                canonical = name
            if canonical is None:
                raise RuleSyntaxError(number, f"unknown variable {{{{ {name} }}}}", line)
            values.append(f"{{{{ {canonical} }}}}")
        elif found["quoted"] is not None:
            values.append(re.sub(r"\\(.)", r"\1", found["quoted"]))
        else:
            values.append(found["bare"])
    if not values:
        raise RuleSyntaxError(number, "the fingerprint after -> is empty", line)
    return values, title


def parse_fingerprint_rules(text: str) -> list[FingerprintRule]:
    """Parse fingerprint rules text; comments (``#``) and blank lines are skipped."""
    rules = []
    for number, line in _lines(text):
        arrow = _split_arrow(line)
        if arrow < 0:
            raise RuleSyntaxError(number, "expected 'matcher:value ... -> fingerprint'", line)
        matchers, rest = _matchers(line[:arrow], number, line)
        if rest:
            raise RuleSyntaxError(number, f"expected a matcher like key:value, got {rest!r}", line)
        if not matchers:
            raise RuleSyntaxError(number, "a rule needs at least one matcher before ->", line)
        values, title = _fingerprint(line[arrow + 2 :], number, line)
        rules.append(
            FingerprintRule(
                matchers=tuple(matchers),
                fingerprint=tuple(values),
                title=title,
                line=number,
                frame_matchers=tuple(m for m in matchers if m.on_frame),
                event_matchers=tuple(m for m in matchers if not m.on_frame),
            )
        )
    return rules


def parse_stacktrace_rules(text: str) -> list[StacktraceRule]:
    """Parse stack trace rules text; comments (``#``) and blank lines are skipped."""
    rules = []
    for number, line in _lines(text):
        if line.startswith("[") or " | " in line:
            raise RuleSyntaxError(number, "caller/callee matching ([ ... ] |) is not supported", line)
        matchers, rest = _matchers(line, number, line)
        for matcher in matchers:
            if not matcher.on_frame and matcher.key not in _STACK_EVENT_KEYS:
                raise RuleSyntaxError(
                    number, f"{matcher.key} cannot be used in stack trace rules", line
                )
        actions: list[Action] = []
        max_frames: int | None = None
        for token in rest.split():
            action = _ACTION.fullmatch(token)
            variable = _VAR_ACTION.fullmatch(token)
            if action:
                scope, sign, flag = action.groups()
                actions.append(Action(flag, sign == "+", scope))
            elif variable and variable.group(1) == "max-frames":
                if not variable.group(2).isdigit():
                    raise RuleSyntaxError(number, "max-frames expects a number", line)
                max_frames = int(variable.group(2))
            elif variable:
                raise RuleSyntaxError(number, f"unknown variable action {variable.group(1)!r}", line)
            elif ":" in token:
                raise RuleSyntaxError(number, f"matchers must come before actions: {token!r}", line)
            else:
                raise RuleSyntaxError(
                    number, f"unknown action {token!r} (expected +app, -app, +group, -group)", line
                )
        if not matchers:
            raise RuleSyntaxError(number, "a rule needs at least one matcher", line)
        if not actions and max_frames is None:
            raise RuleSyntaxError(number, "a rule needs at least one action, such as -app", line)
        rules.append(StacktraceRule(tuple(matchers), tuple(actions), max_frames, number))
    return rules
