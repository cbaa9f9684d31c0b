"""Telemetry tables of error tracking: events, sessions, attachments, feedback, outcomes,
transactions (row building lives in light modules that ingest workers import without these)."""

from spyglass.kernel.telemetry import Column, TableSpec, register_table

EVENTS = register_table(
    TableSpec(
        name="events",
        columns=(
            Column("project_id", "uint64"),
            Column("timestamp", "datetime", "DoubleDelta, ZSTD(1)"),
            Column("received_at", "datetime", "DoubleDelta, ZSTD(1)"),
            Column("event_id", "string"),
            Column("issue_id", "uint64"),
            Column("group_hash", "string"),
            Column("level", "lowcard"),
            Column("platform", "lowcard"),
            Column("release", "lowcard"),
            Column("environment", "lowcard"),
            Column("title", "string", "ZSTD(3)"),
            Column("culprit", "string", "ZSTD(3)"),
            Column("exception_type", "lowcard"),
            Column("exception_value", "string", "ZSTD(3)"),
            Column("transaction", "string", "ZSTD(3)"),
            #: Who was affected: user id, else email, username or IP ("" when unknown).
            Column("user_key", "string"),
            Column("trace_id", "string"),
            Column("tags", "map", "ZSTD(3)"),
            #: The normalized, scrubbed event as JSON, for the event page.
            Column("data", "string", "ZSTD(3)", duckdb_compression="zstd"),
            Column("size", "uint32"),
        ),
        order_by=("project_id", "timestamp", "event_id"),
    )
)

SESSIONS = register_table(
    TableSpec(
        name="sessions",
        columns=(
            Column("project_id", "uint64"),
            #: When the session started (release health buckets sessions by start).
            Column("timestamp", "datetime", "DoubleDelta, ZSTD(1)"),
            Column("received_at", "datetime", "DoubleDelta, ZSTD(1)"),
            #: "" for pre-aggregated rows from ``sessions`` items.
            Column("session_id", "string"),
            Column("distinct_id", "string"),
            Column("release", "lowcard"),
            Column("environment", "lowcard"),
            #: ok, exited, errored, crashed, abnormal.
            Column("status", "lowcard"),
            Column("errors", "uint32"),
            Column("seq", "uint64"),
            Column("init", "bool"),
            #: 1 for a session update; the count of sessions for an aggregate row.
            Column("quantity", "uint32"),
        ),
        order_by=("project_id", "release", "timestamp"),
    )
)

ATTACHMENTS = register_table(
    TableSpec(
        name="attachments",
        columns=(
            Column("project_id", "uint64"),
            Column("timestamp", "datetime"),
            Column("event_id", "string"),
            Column("attachment_id", "string"),
            Column("filename", "string"),
            Column("content_type", "lowcard"),
            Column("attachment_type", "lowcard"),
            Column("size", "uint64"),
            Column("blob_key", "string"),
        ),
        order_by=("project_id", "event_id", "timestamp"),
    )
)

FEEDBACK = register_table(
    TableSpec(
        name="feedback",
        columns=(
            Column("project_id", "uint64"),
            Column("timestamp", "datetime"),
            Column("feedback_id", "string"),
            #: The event it is about ("" for feedback sent on its own).
            Column("event_id", "string"),
            Column("name", "string"),
            Column("email", "string"),
            Column("comments", "string", "ZSTD(3)"),
            Column("url", "string"),
            Column("release", "lowcard"),
            Column("environment", "lowcard"),
        ),
        order_by=("project_id", "timestamp"),
    )
)

OUTCOMES = register_table(
    TableSpec(
        name="outcomes",
        columns=(
            Column("project_id", "uint64"),
            Column("timestamp", "datetime"),
            #: accepted, filtered, rate_limited, invalid, client_discard ...
            Column("outcome", "lowcard"),
            Column("reason", "lowcard"),
            Column("category", "lowcard"),
            Column("quantity", "uint64"),
        ),
        order_by=("project_id", "timestamp"),
    )
)

#: One summary row per Sentry transaction (see :mod:`spyglass.errors.transactions`).
TRANSACTIONS = register_table(
    TableSpec(
        name="transactions",
        columns=(
            Column("project_id", "uint64"),
            Column("timestamp", "datetime", "DoubleDelta, ZSTD(1)"),
            Column("trace_id", "string", "ZSTD(3)"),
            Column("span_id", "string", "ZSTD(3)"),
            Column("name", "lowcard"),
            Column("op", "lowcard"),
            Column("duration_ms", "float64", "Gorilla, ZSTD(1)"),
            #: Sentry span status: ok, internal_error, not_found, deadline_exceeded ...
            Column("status", "lowcard"),
            Column("http_status_code", "uint16"),
            Column("user_key", "string"),
            Column("release", "lowcard"),
            Column("environment", "lowcard"),
            Column("platform", "lowcard"),
            Column("service", "lowcard"),
            #: sentry | otlp
            Column("source", "lowcard"),
            #: Web vitals and other measurements sent with the transaction (name → value).
            Column("measurements", "map", "ZSTD(3)"),
        ),
        order_by=("project_id", "name", "timestamp"),
    )
)
