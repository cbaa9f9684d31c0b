"""Read the parts of a normalized Sentry event that grouping looks at, tolerating any shape.

Events come from the internet: every accessor here accepts missing keys, ``None`` and values
of the wrong type, and answers with an empty value instead of raising.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "exceptions",
    "family_of",
    "frames_of",
    "message_of",
    "tags_of",
    "text",
]

_JAVASCRIPT = frozenset({"javascript", "node", "react-native", "electron"})
_NATIVE = frozenset({"native", "c", "cocoa", "objc", "swift", "minidump", "apple", "cpp", "rust"})


def text(value: Any) -> str:
    """A string field as a string: ``None`` becomes ``""`` and other types their ``str``."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        value = value.get("values")
    return value if isinstance(value, list) else []


def exceptions(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The exception chain, oldest cause first and the exception that was raised last.

    Sentry accepts ``exception`` both as ``{"values": [...]}`` and as a bare list.
    """
    return [e for e in _list(event.get("exception")) if isinstance(e, dict)]


def frames_of(exception: dict[str, Any]) -> list[dict[str, Any]]:
    """An exception's stack frames, outermost call first and the crashing frame last."""
    stacktrace = exception.get("stacktrace")
    if not isinstance(stacktrace, dict):
        return []
    frames = stacktrace.get("frames")
    if not isinstance(frames, list):
        return []
    return [f for f in frames if isinstance(f, dict)]


def message_of(event: dict[str, Any]) -> tuple[str, str]:
    """The event's message as ``(template, formatted)``.

    The template is ``logentry.message`` when the SDK sent its parameters apart
    (``logging.error("paid %s", 12)``), so the data never reaches the grouping hash.
    """
    logentry = event.get("logentry")
    if not isinstance(logentry, dict):
        logentry = event.get("sentry.interfaces.Message")
    if isinstance(logentry, dict):
        template = text(logentry.get("message"))
        formatted = text(logentry.get("formatted")) or template
        if template or formatted:
            return template or formatted, formatted or template
    message = event.get("message")
    if isinstance(message, dict):  # the legacy store endpoint allowed a logentry here
        template = text(message.get("message"))
        formatted = text(message.get("formatted")) or template
        return template or formatted, formatted
    message = text(message)
    return message, message


def family_of(event: dict[str, Any]) -> str:
    """Sentry's platform family: ``javascript``, ``native`` or ``other``."""
    platform = text(event.get("platform")).lower()
    if platform in _JAVASCRIPT:
        return "javascript"
    if platform in _NATIVE:
        return "native"
    return "other"


def tags_of(event: dict[str, Any]) -> dict[str, str]:
    """Tags as a dict; SDKs send either a mapping or a list of ``[key, value]`` pairs."""
    tags = event.get("tags")
    if isinstance(tags, dict):
        return {text(k): text(v) for k, v in tags.items()}
    out: dict[str, str] = {}
    if isinstance(tags, list):
        for pair in tags:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                out[text(pair[0])] = text(pair[1])
    return out


def transaction_of(event: dict[str, Any]) -> str:
    return text(event.get("transaction"))
