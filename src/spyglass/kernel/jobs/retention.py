"""Retention: delete each project's telemetry older than its ``retention_days``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import Project, utcnow
from spyglass.kernel.telemetry import TelemetryStore, registered_tables


def apply_retention(db: Database, store: TelemetryStore, now: dt.datetime | None = None) -> int:
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
    return done
