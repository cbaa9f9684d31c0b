"""Stack frames as grouping sees them: a stable name per frame, and its in-app flag.

A frame's grouping name is its module (or, without one, its file name) and its function,
never its line number, so an edit elsewhere in the file keeps the group. JavaScript file
names are cleaned of what changes with every deploy: the host, query strings, and the content
hashes and versions that bundlers put in file names (``main.8e2f1a3b.js`` is ``main.js``).
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache
from typing import Any

from .event import text

__all__ = ["Frame", "collapse_recursion", "make_frames", "normalize_js_path"]


class Frame:
    """One frame with the fields matchers read and the two flags rules may flip."""

    __slots__ = ("abs_path", "filename", "function", "group", "in_app", "module", "name", "package")

    def __init__(self, raw: dict[str, Any], javascript: bool) -> None:
        self.module = text(raw.get("module"))
        self.function = text(raw.get("function")) or "?"
        self.abs_path = text(raw.get("abs_path"))
        self.filename = text(raw.get("filename"))
        self.package = text(raw.get("package"))
        in_app = raw.get("in_app")
        if isinstance(in_app, bool):
            self.in_app = in_app
        else:
            self.in_app = javascript and _javascript_in_app(self.abs_path or self.filename)
        self.group = True
        self.name = _frame_name(self.module, self.abs_path or self.filename, javascript)

    @property
    def label(self) -> str:
        """The frame as the hash and the "why grouped" explanation both show it."""
        return f"{self.name} in {self.function}"


def _javascript_in_app(path: str) -> bool:
    # The browser and Node SDKs leave in_app unset for some frames; Sentry's own rule of
    # thumb is that dependencies live in node_modules and engines' internals have no file.
    if not path or path.startswith(("<", "[native", "native", "node:", "internal/")):
        return False
    return "/node_modules/" not in path


def _frame_name(module: str, path: str, javascript: bool) -> str:
    if javascript:
        return normalize_js_path(module or path) or "?"
    if module:
        return module
    return _basename(path) or "?"


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# A token between separators that looks like a content hash or a version rather than a name.
_TOKEN_SPLIT = re.compile(r"([.\-~@])")
_VERSION = re.compile(r"v?\d+(?:\.\d+)*")
_HEX = re.compile(r"[0-9a-fA-F]{6,}")


def _hashy(token: str) -> bool:
    if not token:
        return False
    if _VERSION.fullmatch(token):
        return True
    has_digit = any(c.isdigit() for c in token)
    if has_digit and _HEX.fullmatch(token):
        return True
    if len(token) >= 8 and token.replace("_", "").isalnum():
        # Base64 content hashes (Vite, esbuild) mix digits and letters, or flip case far more
        # often than a CamelCase name does ("BfZaXyKd" against "DataGrid").
        flips = sum(a.isupper() != b.isupper() for a, b in itertools.pairwise(token))
        return has_digit or flips >= 4
    return False


def _clean_segment(segment: str) -> str:
    parts = _TOKEN_SPLIT.split(segment)
    # parts alternates token, separator, token...; keep the first token (the name) always.
    kept = [parts[0]]
    for i in range(1, len(parts) - 1, 2):
        if not _hashy(parts[i + 1]):
            kept.append(parts[i])
            kept.append(parts[i + 1])
    return "".join(kept)


@lru_cache(maxsize=8192)
def normalize_js_path(path: str) -> str:
    """A JavaScript file name without host, query, fragment, content hashes and versions.

    ``https://cdn.example.com/static/js/main.8e2f1a3b.chunk.js?v=3`` becomes
    ``static/js/main.chunk.js``; ``webpack:///./src/app.js`` becomes ``src/app.js``.
    """
    path = path.split("?", 1)[0].split("#", 1)[0].replace("\\", "/")
    scheme = _SCHEME.match(path)
    if scheme:
        rest = path[scheme.end() :]
        # Drop the host: CDNs and preview deployments change it without changing the code.
        path = rest.split("/", 1)[1] if "/" in rest else rest
    segments = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if _hashy(segment):
            continue  # a directory named for a build or a version
        segments.append(_clean_segment(segment))
    return "/".join(segments)


def make_frames(raw_frames: list[dict[str, Any]], javascript: bool) -> list[Frame]:
    return [Frame(raw, javascript) for raw in raw_frames]


def collapse_recursion(labels: list[str]) -> list[str]:
    """Drop each frame that repeats the one right before it, so recursion depth is not a group."""
    out: list[str] = []
    previous = None
    for label in labels:
        if label != previous:
            out.append(label)
            previous = label
    return out
