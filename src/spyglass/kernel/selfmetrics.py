"""Spyglass's own Prometheus metrics, served at ``/metrics``."""

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

INGEST_ITEMS = Counter(
    "spyglass_ingest_items",
    "Items accepted at ingest, by endpoint and item type.",
    ["endpoint", "kind"],
    registry=REGISTRY,
)
INGEST_REJECTED = Counter(
    "spyglass_ingest_rejected_items",
    "Items refused at ingest, by table or endpoint and reason.",
    ["where", "reason"],
    registry=REGISTRY,
)
ROWS_WRITTEN = Counter(
    "spyglass_writer_rows",
    "Rows committed by the batching writer, by table.",
    ["table"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "spyglass_writer_queue_rows",
    "Rows waiting in the batching writer.",
    registry=REGISTRY,
)
FLUSH_SECONDS = Histogram(
    "spyglass_writer_flush_seconds",
    "Time to commit one batch to the telemetry store, by table.",
    ["table"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "spyglass_http_request_seconds",
    "HTTP request latency, by method, route and status class.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "spyglass_job_runs",
    "Periodic job runs, by job and outcome.",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOURNAL_WAITING_ROWS = Gauge(
    "spyglass_journal_waiting_rows",
    "Rows acknowledged into the ingest journal and not loaded into the tables yet.",
    registry=REGISTRY,
)
JOURNAL_LOAD_SECONDS = Histogram(
    "spyglass_journal_load_seconds",
    "Time to load what waits in the ingest journal into the tables (one transaction).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
INGEST_PROCESSED_BY = Counter(
    "spyglass_ingest_processed_by",
    "Sentry ingest requests by where they were processed (worker, or server and why).",
    ["where"],
    registry=REGISTRY,
)
INGEST_WORKER_RESTARTS = Counter(
    "spyglass_ingest_worker_restarts",
    "Ingest worker processes started again after they died.",
    registry=REGISTRY,
)

#: (metric, label values) → the labelled child; see :func:`child`.
_CHILDREN: dict[tuple[Any, tuple[str, ...]], Any] = {}
_MAX_CHILDREN = 10_000


def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, remembered: prometheus_client validates the values and
    takes a lock on every ``labels`` call, which was a tenth of the server's request handling
    on the ingest path. Label values must come from small sets (the callers' job: a client
    must never be able to add label values at will)."""
    key = (metric, values)
    found = _CHILDREN.get(key)
    if found is None:
        found = metric.labels(*values)
        if len(_CHILDREN) < _MAX_CHILDREN:
            _CHILDREN[key] = found
    return found
