"""The telemetry tables of OpenTelemetry data: spans, log records and metric points.

The row shapes are documented in ``docs/opentelemetry.md``; other features (Sentry
transactions and logs) write rows of the same shape, marked by ``source``.

Spans are ordered by trace so that the spans of one trace sit together on disk: a trace
lookup reads one granule, and ids, timestamps and attribute maps compress against their
neighbours (the bytes-per-span target of issue 4 depends on it). Resource attributes are
stored once per resource in ``resources`` (see ``resources.py``), referenced by ``resource_id``.
"""

from spyglass.kernel.telemetry import Column, TableSpec, register_table
from spyglass.otel.resources import RESOURCES

__all__ = ["LOGS", "METRIC_POINTS", "RESOURCES", "SPANS"]

# ZSTD level for text-like columns that repeat within a trace or a service.
Z = "ZSTD(3)"

SPANS = register_table(
    TableSpec(
        name="spans",
        columns=(
            Column("project_id", "uint64"),
            # Lower-case hex: 32 characters, 16 for span ids; "" for a root's parent.
            Column("trace_id", "string", Z),
            Column("span_id", "string", Z),
            Column("parent_span_id", "string", Z),
            Column("trace_state", "string", Z),
            Column("service", "lowcard", Z),
            Column("name", "lowcard", Z),
            # OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
            Column("kind", "uint8", Z),
            Column("start", "datetime", "Delta, ZSTD(1)"),
            Column("duration_ns", "uint64", "T64, ZSTD(1)"),
            # OTLP StatusCode: 0 unset, 1 ok, 2 error.
            Column("status_code", "uint8", Z),
            Column("status_message", "string", Z),
            # Hot semantic-convention attributes, old and new names folded into one column
            # each and removed from ``attributes``.
            Column("http_method", "lowcard", Z),
            Column("http_route", "lowcard", Z),
            Column("http_status_code", "uint16", Z),
            Column("db_system", "lowcard", Z),
            Column("peer_service", "lowcard", Z),
            Column("scope_name", "lowcard", Z),
            Column("scope_version", "lowcard", Z),
            Column("attributes", "map", Z),
            # Fingerprint of the emitting resource, whose attributes are in ``resources``.
            Column("resource_id", "uint64", Z),
            # JSON arrays, "" when there are none (see docs/opentelemetry.md for their shape).
            Column("events", "string", Z),
            Column("links", "string", Z),
            Column("source", "lowcard", Z),
        ),
        order_by=("project_id", "trace_id", "start"),
        time_column="start",
    )
)

LOGS = register_table(
    TableSpec(
        name="logs",
        columns=(
            Column("project_id", "uint64"),
            Column("timestamp", "datetime", "Delta, ZSTD(1)"),
            Column("observed", "datetime", "Delta, ZSTD(1)"),
            Column("service", "lowcard", Z),
            # OTLP SeverityNumber: 1-4 trace, 5-8 debug, 9-12 info, 13-16 warn, 17-20 error,
            # 21-24 fatal; 0 unspecified.
            Column("severity_number", "uint8", Z),
            Column("severity_text", "lowcard", Z),
            # A string body as is; any other body as JSON.
            Column("body", "string", Z),
            Column("trace_id", "string", Z),
            Column("span_id", "string", Z),
            Column("event_name", "lowcard", Z),
            Column("scope_name", "lowcard", Z),
            Column("attributes", "map", Z),
            # Fingerprint of the emitting resource, whose attributes are in ``resources``.
            Column("resource_id", "uint64", Z),
            Column("source", "lowcard", Z),
        ),
        order_by=("project_id", "service", "timestamp"),
    )
)

METRIC_POINTS = register_table(
    TableSpec(
        name="metric_points",
        columns=(
            Column("project_id", "uint64"),
            Column("metric", "lowcard", Z),
            # gauge | sum | histogram | exponential_histogram | summary
            Column("type", "lowcard", Z),
            Column("unit", "lowcard", Z),
            Column("description", "lowcard", Z),
            # OTLP AggregationTemporality: 0 unspecified (gauge, summary), 1 delta, 2 cumulative.
            Column("temporality", "uint8", Z),
            Column("monotonic", "bool", Z),
            Column("service", "lowcard", Z),
            # Identifies one time series: a stable hash of metric name, attributes and resource.
            Column("series_id", "uint64", Z),
            Column("timestamp", "datetime", "DoubleDelta, ZSTD(1)"),
            # Start of the accumulation (cumulative: the counter's start; a reset moves it).
            Column("start_time", "datetime", "Delta, ZSTD(1)"),
            # Gauge and sum: the value (ints converted). Histograms and summaries: NaN.
            Column("value", "float64", "Gorilla, ZSTD(1)"),
            Column("count", "uint64", "T64, ZSTD(1)"),
            Column("sum", "float64", "Gorilla, ZSTD(1)"),
            # NaN when the point does not carry them.
            Column("min", "float64", "Gorilla, ZSTD(1)"),
            Column("max", "float64", "Gorilla, ZSTD(1)"),
            # Numbers kept as decimal strings until the store has numeric array columns.
            # Histogram: explicit bounds and bucket counts (len(bounds) + 1 counts).
            Column("bounds", "strings", Z),
            Column("bucket_counts", "strings", Z),
            # Exponential histogram.
            Column("scale", "int32", Z),
            Column("zero_count", "uint64", Z),
            Column("zero_threshold", "float64", Z),
            Column("positive_offset", "int32", Z),
            Column("positive_counts", "strings", Z),
            Column("negative_offset", "int32", Z),
            Column("negative_counts", "strings", Z),
            # Summary: quantile levels and their values.
            Column("quantiles", "strings", Z),
            Column("quantile_values", "strings", Z),
            # OTLP DataPointFlags (1 = no recorded value).
            Column("flags", "uint32", Z),
            # JSON array of exemplars, "" when there are none.
            Column("exemplars", "string", Z),
            Column("scope_name", "lowcard", Z),
            Column("attributes", "map", Z),
            # Fingerprint of the emitting resource, whose attributes are in ``resources``.
            Column("resource_id", "uint64", Z),
        ),
        order_by=("project_id", "metric", "series_id", "timestamp"),
    )
)
