"""What OTLP/HTTP and OTLP/gRPC share: a parsed export request → rows → reply message."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from spyglass.kernel import selfmetrics
from spyglass.kernel.ingest.writer import BatchingWriter
from spyglass.kernel.telemetry import TableSpec
from spyglass.otel.decode import Signal
from spyglass.otel.resources import ResourceLog
from spyglass.otel.rows import Converted, logs_table, metrics_table, spans_table
from spyglass.otel.schema import LOGS, METRIC_POINTS, SPANS

#: Largest request body, compressed or not (the OTLP default of common receivers).
MAX_BODY = 64 * 1024 * 1024

#: signal → (table, converter, name of an item in metrics and messages)
TABLES: dict[str, tuple[TableSpec, Callable[[Any, int], Converted], str]] = {
    "traces": (SPANS, spans_table, "spans"),
    "metrics": (METRIC_POINTS, metrics_table, "data_points"),
    "logs": (LOGS, logs_table, "log_records"),
}


def convert(signal: Signal, message: Message, project_id: int) -> tuple[TableSpec, Converted]:
    spec, to_rows, _ = TABLES[signal.name]
    return spec, to_rows(message, project_id)


def submit(writer: BatchingWriter, resources: ResourceLog, project_id: int, spec: TableSpec,
           converted: Converted) -> list[concurrent.futures.Future[None]]:
    """Queue the rows and their resources; the request is durable once all futures are done.

    Raises the writer's ``Overloaded`` or ``WriterStopped`` when it takes no more rows.
    """
    waits = resources.submit(project_id, converted.resources) if converted.accepted else []
    waits.append(writer.submit(spec, converted.table))
    return waits


def count(signal: Signal, transport: str, converted: Converted) -> None:
    item = TABLES[signal.name][2]
    selfmetrics.INGEST_ITEMS.labels(f"otlp_{transport}", item).inc(converted.accepted)
    for reason, n in converted.reasons.items():
        selfmetrics.INGEST_REJECTED.labels(f"otlp_{item}", reason).inc(n)


def reply(signal: Signal, converted: Converted) -> Message:
    """The ``Export*ServiceResponse``, with ``partial_success`` when items were refused."""
    response = signal.response()
    if converted.rejected:
        partial = response.partial_success
        setattr(partial, signal.rejected_field, converted.rejected)
        partial.error_message = converted.message()
    return response
