"""Which project an OTLP request speaks for: its ingest key, without a project in the URL.

OTLP endpoints are fixed paths (``/v1/traces``), so the key alone names the project. The key
comes from ``x-spyglass-key: <key>`` or ``Authorization: Bearer <key>`` (HTTP headers or gRPC
metadata). Lookups are cached in-process for a few seconds, answers "no such key" included,
so a busy exporter costs one metadata query per key every few seconds; a revoked key stops
working within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from sqlalchemy import select

from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import ProjectKey

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000
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


class KeyCache:
    """Ingest key → project id, with a short time-to-live."""

    def __init__(self, db: Database, ttl: float = TTL_SECONDS) -> None:
        self._db = db
        self._ttl = ttl
        self._entries: dict[str, tuple[int | None, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> tuple[bool, int | None]:
        """(hit, project id); a hit with ``None`` means a known-bad key."""
        entry = self._entries.get(key)
        if entry is not None and entry[1] > time.monotonic():
            return True, entry[0]
        return False, None

    def lookup(self, key: str) -> int | None:
        """The project of an active key, from the cache or the metadata database (blocking)."""
        hit, project_id = self.cached(key)
        if hit:
            return project_id
        project_id = self._query(key)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (project_id, time.monotonic() + self._ttl)
        return project_id

    def project_for(self, key: str) -> int:
        project_id = self.lookup(key)
        if project_id is None:
            raise AuthError("this key is not an active ingest key")
        return project_id

    def _query(self, key: str) -> int | None:
        if len(key) > 64:
            return None
        with self._db.session() as s:
            return s.scalar(
                select(ProjectKey.project_id).where(
                    ProjectKey.public_key == key, ProjectKey.revoked_at.is_(None)
                )
            )
