"""The telemetry table of error events."""

from spyglass.kernel.telemetry import Column, TableSpec, register_table

EVENTS = register_table(
    TableSpec(
        name="events",
        columns=(
            Column("project_id", "uint64"),
            Column("timestamp", "datetime", "DoubleDelta, ZSTD(1)"),
            Column("received_at", "datetime", "DoubleDelta, ZSTD(1)"),
            Column("event_id", "string"),
            Column("level", "lowcard"),
            Column("platform", "lowcard"),
            Column("release", "lowcard"),
            Column("environment", "lowcard"),
            Column("title", "string", "ZSTD(3)"),
            Column("exception_type", "lowcard"),
            Column("exception_value", "string", "ZSTD(3)"),
            Column("transaction", "string", "ZSTD(3)"),
            Column("user_id", "string"),
            Column("trace_id", "string"),
            Column("tags", "map", "ZSTD(3)"),
            Column("data", "string", "ZSTD(3)"),
        ),
        order_by=("project_id", "timestamp", "event_id"),
    )
)
