"""What OTLP/HTTP and OTLP/gRPC share: a parsed export request → rows → reply message.

Between conversion and writing, a server's :class:`Pipeline` (set by :func:`connect`) may
sample the spans (``spyglass.otel.sampling``) and hands exceptions recorded on spans and log
records to the error tracker (``spyglass.errors.record``). Only requests that need either
pay anything; their extra rows are written with the request's, so the reply still means
durable.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from google.protobuf.message import Message

from spyglass.errors.record import record_exceptions
from spyglass.errors.schema import OUTCOMES
from spyglass.kernel import selfmetrics
from spyglass.kernel.ingest.writer import BatchingWriter, WriteFailed
from spyglass.kernel.telemetry import TableSpec
from spyglass.otel.decode import Signal
from spyglass.otel.resources import ResourceLog
from spyglass.otel.rows import Converted, logs_table, metrics_table, spans_table
from spyglass.otel.schema import LOGS, METRIC_POINTS, SPANS

log = structlog.get_logger(__name__)

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


@dataclass
class Pipeline:
    """What one server does to a converted request beyond writing its rows."""

    #: ``spyglass.otel.sampling.Sampler``: drops spans by the project's sampling policy.
    sampler: Any = None
    #: ``spyglass.errors.service.ErrorService``: exceptions become error-tracker events.
    errors: Any = None


#: Per server, keyed by its writer (what both the HTTP and the gRPC path hand to ``submit``).
_PIPELINES: weakref.WeakKeyDictionary[BatchingWriter, Pipeline] = weakref.WeakKeyDictionary()
#: Exceptions are grouped in worker threads: issue lookups touch the metadata database, which
#: must not happen on the event loop.
_EXCEPTION_WORKERS = concurrent.futures.ThreadPoolExecutor(
    max_workers=4, thread_name_prefix="spyglass-otel-exceptions")


def connect(writer: BatchingWriter, sampler: Any = None, errors: Any = None) -> None:
    """Give the server writing through ``writer`` its sampling and error tracking."""
    _PIPELINES[writer] = Pipeline(sampler, errors)


def submit(writer: BatchingWriter, resources: ResourceLog, project_id: int, spec: TableSpec,
           converted: Converted) -> list[concurrent.futures.Future[None]]:
    """Queue the rows and their resources; the request is durable once all futures are done.

    Raises the writer's ``Overloaded`` or ``WriterStopped`` when it takes no more rows.
    """
    pipeline = _PIPELINES.get(writer)
    waits: list[concurrent.futures.Future[None]] = []
    if pipeline is not None:
        if pipeline.sampler is not None and spec is SPANS and converted.accepted:
            converted.table, outcomes = pipeline.sampler.apply(project_id, converted.table)
            if outcomes:
                waits.append(writer.submit(OUTCOMES, outcomes))
        if pipeline.errors is not None and converted.exceptions:
            waits.append(_EXCEPTION_WORKERS.submit(
                _record_exceptions, pipeline.errors, writer, project_id, converted.exceptions))
    if converted.accepted:
        waits.extend(resources.submit(project_id, converted.resources))
    waits.append(writer.submit(spec, converted.table))
    return waits


def _record_exceptions(errors: Any, writer: BatchingWriter, project_id: int,
                       exceptions: list[Any]) -> None:
    """Group the exceptions into issues and wait until their rows are durable."""
    processor = errors.processor
    received = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        out = record_exceptions(processor, project_id, exceptions, received)
    except Exception as exc:
        log.error("otel_exceptions_failed", project_id=project_id, error=repr(exc))
        raise WriteFailed(f"exceptions not recorded: {exc}") from exc
    try:
        for future in [writer.submit(out.specs[name], rows) for name, rows in out.rows.items()]:
            future.result()
    except BaseException:
        processor.forget_events(project_id, out)  # the exporter's retry must be stored
        raise


def count(signal: Signal, transport: str, converted: Converted) -> None:
    item = TABLES[signal.name][2]
    selfmetrics.child(selfmetrics.INGEST_ITEMS, f"otlp_{transport}", item).inc(converted.accepted)
    for reason, n in converted.reasons.items():
        selfmetrics.child(selfmetrics.INGEST_REJECTED, f"otlp_{item}", reason).inc(n)


def reply(signal: Signal, converted: Converted) -> Message:
    """The ``Export*ServiceResponse``, with ``partial_success`` when items were refused."""
    response = signal.response()
    if converted.rejected:
        partial = response.partial_success
        setattr(partial, signal.rejected_field, converted.rejected)
        partial.error_message = converted.message()
    return response
