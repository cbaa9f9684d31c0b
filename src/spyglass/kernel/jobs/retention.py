"""Retention: delete each project's telemetry and blobs older than its ``retention_days``.

Blobs follow a key layout that makes this cheap: ``{kind}/{project_id}/{YYYYMMDD}/...``
(kinds are registered with :func:`register_blob_kind`), so a day's blobs go with one
``delete_prefix``. Each run removes the days from the cutoff back over ``BLOB_SWEEP_DAYS``,
which covers a server that was down for weeks.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from spyglass.kernel.blobs import BlobStore
from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import Project, utcnow
from spyglass.kernel.telemetry import TelemetryStore, registered_tables

BLOB_SWEEP_DAYS = 45
_BLOB_KINDS: set[str] = set()


def register_blob_kind(kind: str) -> None:
    """Declare that blobs are stored under ``{kind}/{project_id}/{YYYYMMDD}/``."""
    _BLOB_KINDS.add(kind)


def blob_day_prefix(kind: str, project_id: int, day: dt.date) -> str:
    return f"{kind}/{project_id}/{day:%Y%m%d}/"


def apply_retention(db: Database, store: TelemetryStore, blobs: BlobStore | None = None,
                    now: dt.datetime | None = None) -> int:
    """Returns how many (project, table) pairs were trimmed."""
    now = now or utcnow()
    with db.session() as s:
        projects = [(p.id, p.retention_days) for p in s.scalars(select(Project))]
    tables = [spec for spec in registered_tables().values() if spec.retention]
    done = 0
    for project_id, days in projects:
        cutoff = now - dt.timedelta(days=days)
        for spec in tables:
            store.delete_before(spec, project_id, cutoff)
            done += 1
        if blobs is not None:
            # Whole days only: a day's blobs go once all of that day is past the cutoff.
            last_day = cutoff.date() - dt.timedelta(days=1)
            for back in range(BLOB_SWEEP_DAYS):
                for kind in sorted(_BLOB_KINDS):
                    blobs.delete_prefix(blob_day_prefix(kind, project_id,
                                                        last_day - dt.timedelta(days=back)))
    return done
