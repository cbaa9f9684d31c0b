"""Which project an OTLP request speaks for: its ingest key, without a project in the URL.

OTLP endpoints are fixed paths (``/v1/traces``), so the key alone names the project. The key
comes from ``x-spyglass-key: <key>`` or ``Authorization: Bearer <key>`` (HTTP headers or gRPC
metadata) and is looked up in the runtime's key cache (``kernel.auth.keycache``): a few
seconds per answer, "no such key" included; a key revoked in this process is forgotten at
once, in others within the cache's time-to-live.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from spyglass.kernel.auth.keycache import KeyCache

KEY_HEADER = "x-spyglass-key"


class AuthError(Exception):
    """No key, or a key that is not an active ingest key (→ 401 / UNAUTHENTICATED)."""


def key_from_headers(get: Callable[[str], str | None]) -> str:
    """The ingest key from a header lookup (``get`` takes a lower-case header name)."""
    key = (get(KEY_HEADER) or "").strip()
    if not key:
        auth = (get("authorization") or "").strip()
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
    if not key:
        raise AuthError(f"missing ingest key: send '{KEY_HEADER}: <key>' "
                        "or 'Authorization: Bearer <key>'")
    return key


def key_from_mapping(headers: Mapping[str, str]) -> str:
    return key_from_headers(headers.get)


def project_for(keys: KeyCache, key: str) -> int:
    """The project of an active key (may query the database: call it off the event loop)."""
    project_id = keys.project_of(key)
    if project_id is None:
        raise AuthError("this key is not an active ingest key")
    return project_id
