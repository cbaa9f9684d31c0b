"""Glob patterns as Sentry's grouping rules write them, compiled once to regular expressions.

Two flavours exist. Path globs (``stack.abs_path``, ``stack.package``) follow shell rules:
``*`` stops at ``/``, ``**`` crosses it, and a leading ``**/`` also matches a relative path
with no directory at all. Plain globs (every other matcher) let ``*`` match anything.
Both understand ``?``, ``[abc]``, ``[!abc]`` and backslash escapes (``\\*``, ``\\[``, ``\\{``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["compile_glob"]

_MEMO_SIZE = 4096


def _translate(pattern: str, path: bool) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            if path and pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    # "**/x" must match "x" itself, "a/x" and "a/b/x".
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[^/]*" if path else ".*")
            continue
        if c == "?":
            out.append("[^/]" if path else ".")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(r"\[")
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_glob(pattern: str, *, path: bool = False, ignore_case: bool = False) -> Callable[[str], bool]:
    """Return a predicate telling whether a whole string matches the glob ``pattern``.

    With ``path=True`` backslashes in the tested value count as ``/``, so Windows paths match
    the same patterns as Unix ones.
    """
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    fullmatch = re.compile(_translate(pattern, path), flags).fullmatch
    # Rules see the same module names and paths event after event: remember the answers.
    memo: dict[str, bool] = {}

    def test(value: str) -> bool:
        hit = memo.get(value)
        if hit is None:
            hit = fullmatch(value.replace("\\", "/") if path else value) is not None
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[value] = hit
        return hit

    return test
