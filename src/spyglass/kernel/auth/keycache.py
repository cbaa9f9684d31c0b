"""Ingest key → project, cached in the process for a few seconds.

Every ingest request is authenticated by its key; asking the metadata database each time
would cost more than processing a small event. Answers, "no such key" included, are kept
for ``ttl`` seconds. A key revoked here is forgotten at once; other processes stop accepting
it within ``ttl``.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import ProjectKey

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000
MAX_KEY_LENGTH = 64


class KeyCache:
    def __init__(self, db: Database, ttl: float = TTL_SECONDS) -> None:
        self._db = db
        self._ttl = ttl
        self._entries: dict[str, tuple[int | None, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> tuple[bool, int | None]:
        """(hit, project id) without touching the database; a hit with None is a bad key."""
        entry = self._entries.get(key)
        if entry is not None and entry[1] > time.monotonic():
            return True, entry[0]
        return False, None

    def project_of(self, key: str) -> int | None:
        """The project of an active key (may query the database: call it off the event loop)."""
        hit, project_id = self.cached(key)
        if hit:
            return project_id
        project_id = self._query(key)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (project_id, time.monotonic() + self._ttl)
        return project_id

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _query(self, key: str) -> int | None:
        if len(key) > MAX_KEY_LENGTH:
            return None
        with self._db.session() as s:
            return s.scalar(select(ProjectKey.project_id).where(
                ProjectKey.public_key == key, ProjectKey.revoked_at.is_(None)))
