"""Telemetry storage: an append-mostly columnar store (DuckDB embedded, ClickHouse scaled out)."""

from spyglass.kernel.telemetry.schema import Column, TableSpec, register_table, registered_tables
from spyglass.kernel.telemetry.store import TelemetryStore, open_telemetry_store

__all__ = [
    "Column",
    "TableSpec",
    "TelemetryStore",
    "open_telemetry_store",
    "register_table",
    "registered_tables",
]
