"""Resources (the attributes of the process that emitted telemetry), stored once, not per row.

A batch of 512 spans usually comes from one or a few resources of a dozen attributes each;
repeating them on every span would cost more to insert and to store than the span itself
(measured: about half of DuckDB's insert time and bytes). So spans, log records and metric
points carry ``resource_id``, a stable 64-bit fingerprint of the resource's attributes, and
the ``resources`` table holds the attributes.

Each process writes a resource row the first time it sees a resource and again every hour
while it is in use, so retention (on the row's ``timestamp``) never removes a resource still
referenced by recent data. Duplicate rows are expected; readers take any one of them. A data
request is acknowledged only once the rows of its resources are durable too: a request that
finds a resource row still being written waits for it.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import threading
import time
from typing import Any

import orjson
import pyarrow as pa

from spyglass.kernel.ingest.writer import BatchingWriter
from spyglass.kernel.telemetry import Column, TableSpec, register_table

REWRITE_SECONDS = 3600
MAX_REMEMBERED = 100_000

RESOURCES = register_table(
    TableSpec(
        name="resources",
        columns=(
            Column("project_id", "uint64"),
            Column("resource_id", "uint64"),
            # When this copy of the row was written (a resource in use is rewritten hourly).
            Column("timestamp", "datetime", "Delta, ZSTD(1)"),
            Column("service", "lowcard", "ZSTD(3)"),
            Column("attributes", "map", "ZSTD(3)"),
        ),
        order_by=("project_id", "resource_id", "timestamp"),
    )
)


def resource_id(attributes: dict[str, str]) -> int:
    """The fingerprint of a resource: the same attributes give the same id everywhere."""
    if not attributes:
        return 0
    digest = hashlib.blake2b(orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


class ResourceLog:
    """Writes each resource row once per process and hour, and tells callers what to wait on."""

    def __init__(self, writer: BatchingWriter) -> None:
        self._writer = writer
        self._written: dict[tuple[int, int], tuple[concurrent.futures.Future[None], float]] = {}
        self._lock = threading.Lock()

    def submit(self, project_id: int, resources: dict[int, tuple[str, dict[str, str]]],
               ) -> list[concurrent.futures.Future[None]]:
        """Queue the rows of resources not yet (or not recently) written; return the writes
        the caller must see succeed before acknowledging its data."""
        now = time.monotonic()
        waits: list[concurrent.futures.Future[None]] = []
        new: list[dict[str, Any]] = []
        with self._lock:
            for rid, (service, attrs) in resources.items():
                entry = self._written.get((project_id, rid))
                if entry is not None and entry[1] > now:
                    future = entry[0]
                    failed = future.done() and future.exception() is not None
                    if not failed:
                        if not future.done():
                            waits.append(future)
                        continue
                new.append({"project_id": project_id, "resource_id": rid, "service": service,
                            "attributes": attrs})
        if not new:
            return waits
        stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for row in new:
            row["timestamp"] = stamp
        future = self._writer.submit(RESOURCES, pa.Table.from_pylist(
            new, schema=RESOURCES.arrow_schema))
        with self._lock:
            if len(self._written) >= MAX_REMEMBERED:
                self._written.clear()
            for row in new:
                self._written[(project_id, row["resource_id"])] = (future, now + REWRITE_SECONDS)
        waits.append(future)
        return waits
