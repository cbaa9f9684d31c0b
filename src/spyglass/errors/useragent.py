"""Browser, OS and device contexts from a User-Agent header, as Sentry derives them at ingest.

Browser SDKs send only the User-Agent; the browser/os/device contexts (and so the tags the
issue page breaks down by) come from it. Parsing uses ``ua-parser`` (the uap-core rules);
results are cached because a project sees the same few hundred User-Agents over and over.
"""

from __future__ import annotations

import functools
from typing import Any


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


@functools.lru_cache(maxsize=4096)
def _parse(user_agent: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    import ua_parser  # loading its rules takes ~0.3 s, paid on first use only

    result = ua_parser.parse(user_agent)
    contexts: list[tuple[str, dict[str, Any]]] = []
    ua, os_, device = result.user_agent, result.os, result.device
    if ua and ua.family != "Other":
        contexts.append(("browser", {"type": "browser", "name": ua.family,
                                     "version": _version(ua.major, ua.minor, ua.patch)}))
    if os_ and os_.family != "Other":
        contexts.append(("os", {"type": "os", "name": os_.family,
                                "version": _version(os_.major, os_.minor, os_.patch)}))
    if device and device.family != "Other":
        contexts.append(("device", {"type": "device", "family": device.family,
                                    "model": device.model, "brand": device.brand}))
    return tuple(contexts)


def contexts_from_user_agent(user_agent: str) -> dict[str, dict[str, Any]]:
    """``{"browser": {...}, "os": {...}, "device": {...}}`` for the parts that are known."""
    if not user_agent:
        return {}
    return {name: dict(ctx) for name, ctx in _parse(user_agent[:512])}


def user_agent_of(event: dict[str, Any]) -> str:
    request = event.get("request")
    headers = request.get("headers") if isinstance(request, dict) else None
    pairs = headers.items() if isinstance(headers, dict) else headers if isinstance(headers, list) else []
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and str(pair[0]).lower() == "user-agent":
            return str(pair[1])
    return ""
