"""The running server's shared parts: settings, databases, writer, blob store and jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import structlog

from spyglass.config import Settings
from spyglass.kernel.auth.keycache import KeyCache
from spyglass.kernel.auth.sessions import purge_expired
from spyglass.kernel.blobs import BlobStore, open_blob_store
from spyglass.kernel.ingest.writer import BatchingWriter
from spyglass.kernel.jobs.leader import leadership_for
from spyglass.kernel.jobs.retention import apply_retention
from spyglass.kernel.jobs.runner import JobRunner
from spyglass.kernel.meta.db import Database
from spyglass.kernel.telemetry import TelemetryStore, open_telemetry_store, registered_tables

log = structlog.get_logger(__name__)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        # Arrow's default allocator (mimalloc) keeps what the writer and the ingest journal
        # free for reuse: 55 MB more resident memory on the ingest benchmark, for no speed.
        # The C library's malloc gives large blocks back.
        if pa.default_memory_pool().backend_name != "system":
            pa.set_memory_pool(pa.system_memory_pool())
        settings.ensure_data_dir()
        self.settings = settings
        self.db = Database(settings.metadata_url)
        self.keys = KeyCache(self.db)
        self.store: TelemetryStore = open_telemetry_store(
            settings.clickhouse_url, settings.data_dir, settings.duckdb_memory_limit,
            settings.ingest_journal, settings.journal_load_ms)
        self.blobs: BlobStore = open_blob_store(
            settings.blob_url, settings.data_dir, settings.s3_endpoint_url
        )
        self.writer = BatchingWriter(
            self.store,
            batch_rows=settings.writer_batch_rows,
            interval_ms=settings.writer_interval_ms,
            max_pending_rows=settings.writer_max_pending_rows,
        )
        self.jobs = JobRunner(leadership_for(self.db.engine, settings.data_dir))
        self.jobs.add(
            "retention", settings.retention_interval_s, lambda: apply_retention(self.db, self.store, self.blobs)
        )
        self.jobs.add("housekeeping", 3600, self._housekeeping)
        self.started_at = time.time()
        self._prepared = False
        self._services: list[tuple[Callable[[], Any], Callable[[Any], None]]] = []
        self._running: list[tuple[Any, Callable[[Any], None]]] = []

    def add_service(self, start: Callable[[], Any], stop: Callable[[Any], None]) -> None:
        """Something a feature runs beside the HTTP server (a gRPC listener ...): ``start``
        runs when the runtime starts, after storage is ready; ``stop(handle)`` before the
        writer stops, in reverse order."""
        self._services.append((start, stop))

    def _housekeeping(self) -> int:
        with self.db.session() as s:
            return purge_expired(s, self.settings.login_window_s)

    def prepare_storage(self) -> None:
        """Migrate the metadata schema and create every registered telemetry table."""
        if self._prepared:
            return
        self._prepared = True
        self.db.migrate()
        for spec in registered_tables().values():
            self.store.ensure_table(spec)
        self.store.recover()

    def start(self) -> None:
        self.prepare_storage()
        self.writer.start()
        if self.settings.jobs_enabled:
            self.jobs.start()
        for start, stop in self._services:
            self._running.append((start(), stop))

    def stop(self) -> None:
        while self._running:
            handle, stop = self._running.pop()
            stop(handle)
        self.jobs.stop()
        self.writer.stop()
        self.store.close()
        self.blobs.close()
        self.db.close()
