"""The columnar store interface every feature writes to and queries.

Queries are written once in ClickHouse's parameter syntax, ``{name:Type}``; the DuckDB
store rewrites the placeholders to its own. Functions that differ between the engines are
the feature's business: it reads ``store.dialect`` ("duckdb" or "clickhouse").
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import pyarrow as pa

from spyglass.kernel.telemetry.schema import TableSpec


class TelemetryStore(ABC):
    dialect: str

    @abstractmethod
    def ensure_table(self, spec: TableSpec) -> None:
        """Create the table if it does not exist (idempotent)."""

    @abstractmethod
    def insert(self, spec: TableSpec, data: pa.Table) -> None:
        """Append rows in one atomic commit; durable when it returns."""

    @abstractmethod
    def query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run a read query and return its result as an Arrow table."""

    @abstractmethod
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, DELETE)."""

    @abstractmethod
    def close(self) -> None: ...

    def recover(self) -> None:
        """After every table is ensured: bring in what a crash left between an ingest
        journal and the tables (a store without a journal has nothing to do)."""

    def journal_status(self) -> dict[str, Any] | None:
        """The ingest journal's rows waiting and last load error, for /readyz (None: this
        store has no journal)."""
        return None

    # -- SQL that differs between the engines (each store overrides what it spells otherwise) --

    def time_bucket(self, column: str, seconds: int) -> str:
        """Start of the ``seconds``-wide bucket holding ``column``, as epoch seconds."""
        return f"(CAST(epoch({column}) AS BIGINT) // {int(seconds)}) * {int(seconds)}"

    def quantile(self, column: str, q: float) -> str:
        return f"quantile_cont({column}, {float(q)})"

    def uniq(self, column: str) -> str:
        """Exact count of distinct non-empty values."""
        return f"count(DISTINCT NULLIF({column}, ''))"

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.query(sql, params).to_pylist()

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        table = self.query(sql, params)
        return table.column(0)[0].as_py() if table.num_rows else None

    def ping(self) -> None:
        self.scalar("SELECT 1")

    def delete_before(self, spec: TableSpec, project_id: int, cutoff: dt.datetime) -> None:
        """Retention: drop a project's rows older than ``cutoff``."""
        self.execute(
            f"DELETE FROM {spec.name} WHERE project_id = {{p:UInt64}} "
            f"AND {spec.time_column} < {{cutoff:DateTime64(6)}}",
            {"p": project_id, "cutoff": cutoff},
        )

    def count(self, table: str, project_id: int | None = None) -> int:
        if project_id is None:
            return int(self.scalar(f"SELECT count(*) FROM {table}"))
        return int(
            self.scalar(f"SELECT count(*) FROM {table} WHERE project_id = {{p:UInt64}}",
                        {"p": project_id})
        )


def open_telemetry_store(url: str, data_dir: Path, duckdb_memory_limit: str = "",
                         journal: bool = True, journal_load_ms: int = 200) -> TelemetryStore:
    """Pick the store from ``SPYGLASS_CLICKHOUSE_URL``: empty → DuckDB in the data directory,
    behind the ingest journal (``journal`` false: inserts go straight to DuckDB, and the
    journal is only read at start for what an earlier run left in it)."""
    if not url or url.startswith("duckdb://"):
        from spyglass.kernel.telemetry.duckdb import DuckDBStore
        from spyglass.kernel.telemetry.journal import JournaledStore

        path = data_dir / "telemetry.duckdb" if not url else Path(url[len("duckdb://") :])
        return JournaledStore(DuckDBStore(path, duckdb_memory_limit),
                              path.with_name(path.name + ".journal"), enabled=journal,
                              load_interval_s=journal_load_ms / 1000)
    from spyglass.kernel.telemetry.clickhouse import ClickHouseStore

    return ClickHouseStore.from_url(url)


def utc_naive(value: dt.datetime) -> dt.datetime:
    """UTC wall-clock without tzinfo, as the stores keep instants."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value
