"""Exceptions seen by other features (OpenTelemetry spans and logs) as error-tracker events.

An ``exception`` span event, or a log record with ``exception.*`` attributes (the OTel
semantic conventions: ``exception.type``, ``exception.message``, ``exception.stacktrace``,
``exception.escaped``), becomes a Sentry-shaped event: the exception with a stack trace parsed
from the text the SDK recorded (Python, Java/Kotlin, JavaScript, Go, .NET, Ruby, PHP), the
platform from ``telemetry.sdk.language``, the trace context, the service as ``server_name``,
``service.version`` as release and ``deployment.environment(.name)`` as environment. It then
goes through :meth:`EventProcessor.process_event` like any SDK's event: normalization,
scrubbing, grouping and issues all apply.

The caller writes the returned rows through the batching writer with the spans or logs they
came from, so its reply still means "durable".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
from typing import Any, TypedDict

from spyglass.errors.items import ItemError
from spyglass.errors.processing import EventProcessor, Processed

#: Tags taken from a span's or log record's attributes, at most.
MAX_TAGS = 40
#: Stack trace text parsed, at most (longer text is cut; frames of the first part are kept).
MAX_STACKTRACE = 64 * 1024

PLATFORMS = {
    "python": "python", "java": "java", "nodejs": "node", "webjs": "javascript",
    "go": "go", "dotnet": "csharp", "ruby": "ruby", "php": "php", "rust": "rust",
    "cpp": "native", "erlang": "elixir", "swift": "cocoa",
}


class SeenException(TypedDict, total=False):
    """One exception as another feature saw it (all keys optional but ``type`` or ``message``).

    ``attributes`` are the span's or log record's own (``exception.*`` may be left in; they
    are not repeated as tags), ``resource`` the emitting resource's.
    """

    type: str
    message: str
    stacktrace: str
    escaped: bool
    time_unix_nano: int
    trace_id: str
    span_id: str
    service: str
    #: The span's name (used as the event's transaction), or the log record's body.
    name: str
    source: str  # "span" or "log"
    severity_number: int  # logs
    scope: str
    attributes: dict[str, str]
    resource: dict[str, str]


def record_exceptions(processor: EventProcessor, project_id: int,
                      exceptions: list[SeenException], received: dt.datetime) -> Processed:
    """Rows (events, and outcomes for unusable ones) of these exceptions; ``received`` is
    naive UTC. A bad exception is counted as invalid; it never stops the others."""
    out = Processed()
    for seen in exceptions:
        try:
            processor.process_event(project_id, sentry_event(seen), received, out)
        except (ItemError, TypeError, ValueError) as exc:
            out.invalid.append(f"otel exception: {exc}"[:300])
    return out


def sentry_event(seen: SeenException) -> dict[str, Any]:
    """The Sentry event of one exception."""
    attrs = seen.get("attributes") or {}
    resource = seen.get("resource") or {}
    language = resource.get("telemetry.sdk.language", "")
    exc_type = seen.get("type") or attrs.get("exception.type") or ""
    message = seen.get("message") or attrs.get("exception.message") or ""
    text = seen.get("stacktrace") or attrs.get("exception.stacktrace") or ""
    escaped = seen.get("escaped")
    if escaped is None:
        escaped = attrs.get("exception.escaped", "").lower() == "true"
    values = parse_stacktrace(text, language)
    main = values[-1] if values else {}
    main["type"] = exc_type or main.get("type") or "Error"
    main["value"] = message or main.get("value") or ""
    main["mechanism"] = {"type": f"otel.{seen.get('source') or 'span'}", "handled": not escaped}
    if not values:
        values.append(main)
    source = seen.get("source") or "span"
    service = seen.get("service") or resource.get("service.name") or ""
    event: dict[str, Any] = {
        "event_id": _event_id(seen, exc_type, message),
        "timestamp": (seen.get("time_unix_nano") or 0) / 1e9 or None,
        "platform": PLATFORMS.get(language) or _platform_of(text),
        "level": _level(seen),
        "server_name": service,
        "release": resource.get("service.version", ""),
        "environment": (resource.get("deployment.environment.name")
                        or resource.get("deployment.environment") or ""),
        "exception": {"values": values},
        "tags": _tags(service, source, attrs),
        "contexts": _contexts(seen, resource, attrs),
        "sdk": {"name": f"opentelemetry.{language or 'unknown'}",
                "version": resource.get("telemetry.sdk.version", "")},
    }
    if source == "span" and seen.get("name"):
        event["transaction"] = seen["name"]
    if source == "log":
        event["logger"] = seen.get("scope") or ""
        if seen.get("name"):
            event["logentry"] = {"formatted": seen["name"]}
    return event


def _event_id(seen: SeenException, exc_type: str, message: str) -> str:
    # Deterministic: an exporter's retry of the same request is stored once (``RecentIds``).
    h = hashlib.blake2b(digest_size=16)
    for part in (seen.get("source"), seen.get("trace_id"), seen.get("span_id"),
                 seen.get("time_unix_nano"), exc_type, message, seen.get("service")):
        h.update(str(part or "").encode())
        h.update(b"\0")
    return h.hexdigest()


def _level(seen: SeenException) -> str:
    n = seen.get("severity_number") or 0
    if not n:
        return "error"
    return ("fatal" if n >= 21 else "error" if n >= 17 else "warning" if n >= 13
            else "info" if n >= 9 else "debug")


def _tags(service: str, source: str, attrs: dict[str, str]) -> dict[str, str]:
    tags = {"service": service, "otel.source": source}
    for key, value in attrs.items():
        if len(tags) >= MAX_TAGS:
            break
        if not key.startswith("exception.") and len(value) <= 200 and "\n" not in value:
            tags.setdefault(key, value)
    return {k: v for k, v in tags.items() if v}


def _contexts(seen: SeenException, resource: dict[str, str], attrs: dict[str, str],
              ) -> dict[str, Any]:
    contexts: dict[str, Any] = {}
    if seen.get("trace_id"):
        trace = {"trace_id": seen["trace_id"], "span_id": seen.get("span_id") or "",
                 "type": "trace"}
        if seen.get("source") == "span" and seen.get("name"):
            trace["op"] = seen["name"]
        contexts["trace"] = trace
    if resource.get("process.runtime.name"):
        contexts["runtime"] = {"name": resource["process.runtime.name"],
                               "version": resource.get("process.runtime.version", "")}
    if resource.get("os.type"):
        contexts["os"] = {"name": resource["os.type"],
                          "version": resource.get("os.version", "")}
    contexts["otel"] = {
        "attributes": {k: v for k, v in attrs.items() if not k.startswith("exception.")},
        "resource": resource,
    }
    return contexts


# -- stack traces as text --------------------------------------------------------------------

_PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
_PY_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")
_JAVA_FRAME = re.compile(r"^\s*at\s+(?:\S+/)?(?P<cls>[\w$.]+)\.(?P<func>[\w$<>-]+)"
                         r"\((?P<file>[\w$-]+\.\w+|Native Method|Unknown Source)(?::(?P<line>\d+))?\)")
_DOTNET_FRAME = re.compile(r"^\s*at\s+(?P<func>[\w.`<>\[\],|]+)\((?P<args>[^)]*)\)"
                           r"(?:\s+in\s+(?P<file>.+):line\s+(?P<line>\d+))?\s*$")
_JS_FRAME = re.compile(r"^\s*at\s+(?:async\s+)?(?:(?P<func>[^(]+?)\s+\()?(?P<file>[^()\s]+?)"
                       r":(?P<line>\d+):(?P<col>\d+)\)?\s*$")
_GECKO_FRAME = re.compile(r"^(?P<func>[^@\s]*)@(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)$")
_GO_FUNC = re.compile(r"^(?P<func>[\w./*()\[\]{}-]+?)\(.*\)$")
_GO_FILE = re.compile(r"^\t(?P<file>\S+?):(?P<line>\d+)(?:\s+\+0x[0-9a-f]+)?$")
_RUBY_FRAME = re.compile(r"^\s*(?:from\s+)?(?P<file>[^:\s]+):(?P<line>\d+):in\s+[`'](?P<func>[^']+)'")
_PHP_FRAME = re.compile(r"^#\d+\s+(?P<file>[^(]+)\((?P<line>\d+)\):\s+(?P<func>.+)$")
_HEADER = re.compile(r"^(?:Caused by:\s+|panic:\s+)?(?P<type>[A-Za-z_$][\w$.]*(?:\[[^\]]*\])?)"
                     r"(?::\s?(?P<value>.*))?$")

_JAVA_LIBRARY = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "kotlin.", "kotlinx.", "scala.",
                 "org.junit.", "org.springframework.", "org.apache.", "io.netty.")


def parse_stacktrace(text: str, language: str = "") -> list[dict[str, Any]]:
    """Sentry exception values (oldest first, frames oldest first) of a stack trace's text.

    Empty when no frame is recognized. The last value is the exception that was recorded; a
    Python chain (``During handling ...``) or Java ``Caused by:`` gives the earlier ones.
    """
    if not text:
        return []
    text = text[:MAX_STACKTRACE]
    lines = text.splitlines()
    if "Traceback (most recent call last)" in text or any(
            _PY_FRAME.match(line) for line in lines[:50]):
        return _python(text)
    if any(_JAVA_FRAME.match(line) for line in lines[:50]) and language not in ("dotnet",):
        return _java(lines)
    if language == "go" or any(line.startswith("goroutine ") for line in lines[:5]):
        frames = _go(lines)
        if frames:
            return [_value(lines, frames, "panic")]
    for pattern, in_app in ((_JS_FRAME, _js_in_app), (_DOTNET_FRAME, _dotnet_in_app),
                            (_GECKO_FRAME, _js_in_app), (_RUBY_FRAME, _path_in_app),
                            (_PHP_FRAME, _path_in_app)):
        frames = _frames(lines, pattern, in_app)
        if frames:
            frames.reverse()  # these formats print the most recent call first
            return [_value(lines, frames)]
    return []


def _value(lines: list[str], frames: list[dict[str, Any]], default: str = "") -> dict[str, Any]:
    exc: dict[str, Any] = {"type": default, "value": ""}
    for line in lines[:3]:
        m = _HEADER.match(line.strip())
        if m and not line.startswith((" ", "\t")) and not line.startswith("goroutine "):
            exc = {"type": m["type"], "value": (m["value"] or "").strip()}
            break
    exc["stacktrace"] = {"frames": frames}
    return exc


def _frames(lines: list[str], pattern: re.Pattern[str], in_app: Any) -> list[dict[str, Any]]:
    frames = []
    for line in lines:
        m = pattern.match(line)
        if m is None:
            continue
        groups = m.groupdict()
        path = (groups.get("file") or "").strip()
        frame: dict[str, Any] = {"function": (groups.get("func") or "").strip() or "?",
                                 "filename": path, "abs_path": path}
        if groups.get("line"):
            frame["lineno"] = int(groups["line"])
        if groups.get("col"):
            frame["colno"] = int(groups["col"])
        frame["in_app"] = in_app(frame)
        frames.append(frame)
    return frames


def _python(text: str) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for line in text.splitlines():
        m = _PY_FRAME.match(line)
        if m:
            path = m["file"]
            last = {"function": (m["func"] or "?").strip(), "filename": path, "abs_path": path,
                    "lineno": int(m["line"]), "in_app": _python_in_app(path)}
            frames.append(last)
            continue
        if line.startswith(("    ", "\t")) and last is not None and "context_line" not in last:
            code = line.strip()
            if code and set(code) - set("^~ "):
                last["context_line"] = code
            continue
        if not line.strip() or line.startswith(("Traceback", " ")) or line.startswith(_PY_CHAIN):
            continue
        h = _HEADER.match(line)
        if h and frames:
            values.append({"type": h["type"], "value": (h["value"] or "").strip(),
                           "stacktrace": {"frames": frames}})
            frames, last = [], None
    if frames:
        values.append({"type": "", "value": "", "stacktrace": {"frames": frames}})
    return values


def _java(lines: list[str]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for line in lines:
        m = _JAVA_FRAME.match(line)
        if m:
            if not blocks:
                blocks.append({"type": "", "value": "", "frames": []})
            cls = m["cls"]
            frame: dict[str, Any] = {"function": m["func"], "module": cls,
                                     "filename": m["file"] or "", "in_app": not cls.startswith(
                                         _JAVA_LIBRARY)}
            if m["line"]:
                frame["lineno"] = int(m["line"])
            blocks[-1]["frames"].append(frame)
            continue
        stripped = line.strip()
        if stripped.startswith(("...", "Suppressed:")) or not stripped:
            continue
        if not blocks or stripped.startswith("Caused by:"):
            h = _HEADER.match(stripped)
            if h:
                blocks.append({"type": h["type"], "value": (h["value"] or "").strip(),
                               "frames": []})
    values = []
    for block in reversed(blocks):  # the last "Caused by" happened first
        frames = list(reversed(block["frames"]))
        values.append({"type": block["type"], "value": block["value"],
                       "stacktrace": {"frames": frames}})
    return values


def _go(lines: list[str]) -> list[dict[str, Any]]:
    frames = []
    for func_line, file_line in itertools.pairwise(lines):
        f, loc = _GO_FUNC.match(func_line), _GO_FILE.match(file_line)
        if f and loc:
            path = loc["file"]
            func = f["func"]
            frames.append({"function": func, "filename": path, "abs_path": path,
                           "lineno": int(loc["line"]),
                           "in_app": not (func.startswith(("runtime.", "runtime/", "panic"))
                                          or "/go/src/" in path or "/pkg/mod/" in path)})
    frames.reverse()
    return frames


def _python_in_app(path: str) -> bool:
    return not (path.startswith("<") or "site-packages" in path or "dist-packages" in path
                or "/lib/python" in path)


def _js_in_app(frame: dict[str, Any]) -> bool:
    path = frame["filename"]
    return not ("node_modules" in path or path.startswith(("node:", "internal/"))
                or path == "native")


def _dotnet_in_app(frame: dict[str, Any]) -> bool:
    return not frame["function"].startswith(("System.", "Microsoft."))


def _path_in_app(frame: dict[str, Any]) -> bool:
    path = frame["filename"]
    return not any(part in path for part in ("/gems/", "/vendor/", "/ruby/", "/pear/"))


def _platform_of(text: str) -> str:
    if "Traceback (most recent call last)" in text:
        return "python"
    if "\tat " in text or "\n\tat " in text:
        return "java"
    return "other"
