"""DuckDB telemetry store: one file in the data directory, for single-process installs."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from spyglass.kernel.telemetry.schema import TYPES, Column, TableSpec
from spyglass.kernel.telemetry.store import TelemetryStore, utc_naive

#: The ingest journal's bookkeeping: the last record loaded into the tables.
JOURNAL_TABLE = "spyglass_journal"
_PLACEHOLDER = re.compile(r"\{(\w+):[^{}]+\}")


def to_duckdb_sql(sql: str) -> str:
    return _PLACEHOLDER.sub(lambda m: "$" + m.group(1), sql)


def _column_sql(c: Column) -> str:
    sql = f'"{c.name}" {TYPES[c.type][0]}'
    return f"{sql} USING COMPRESSION {c.duckdb_compression}" if c.duckdb_compression else sql


class DuckDBStore(TelemetryStore):
    dialect = "duckdb"

    def __init__(self, path: Path, memory_limit: str = "") -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # DuckDB's own default buffer pool is 80% of the machine's memory, which it fills
        # with the pages it wrote and keeps; the limit bounds that (pages are evicted, and
        # large queries spill to disk). Empty keeps DuckDB's default.
        config = {"memory_limit": memory_limit} if memory_limit else {}
        self._conn = duckdb.connect(str(path), config=config)
        self._conn.execute("SET TimeZone = 'UTC'")
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} "
                           "(id INTEGER PRIMARY KEY, loaded UBIGINT)")
        self._write_lock = threading.Lock()
        self._local = threading.local()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # A DuckDB connection must not be shared between threads; each thread gets a cursor
        # (its own connection to the same database).
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._conn.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cur
        return cur

    def ensure_table(self, spec: TableSpec) -> None:
        cols = ", ".join(_column_sql(c) for c in spec.columns)
        with self._write_lock:
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS {spec.name} ({cols})")
            have = {r[0] for r in self._conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                [spec.name]).fetchall()}
            for c in spec.columns:
                if c.name not in have:  # additive schema evolution: new columns only
                    self._conn.execute(f"ALTER TABLE {spec.name} ADD COLUMN {_column_sql(c)}")

    def insert(self, spec: TableSpec, data: pa.Table) -> None:
        with self._write_lock:
            _append(self._cursor(), spec, data)

    def insert_all(self, batches: list[tuple[TableSpec, pa.Table]], journal_seq: int) -> None:
        """Insert several tables' rows and record ``journal_seq`` as the last journal record
        loaded, in one transaction (see :mod:`spyglass.kernel.telemetry.journal`)."""
        with self._write_lock:
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                for spec, data in batches:
                    _append(cur, spec, data)
                cur.execute(f"INSERT OR REPLACE INTO {JOURNAL_TABLE} VALUES (1, ?)",
                            [journal_seq])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def journal_loaded(self) -> int:
        """The sequence number of the last journal record loaded (0: none)."""
        [(loaded,)] = self._cursor().execute(
            f"SELECT max(loaded) FROM {JOURNAL_TABLE}").fetchall()
        return int(loaded or 0)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        relation = self._cursor().sql(to_duckdb_sql(sql), params=_params(params))
        return relation.to_arrow_table() if relation is not None else pa.table({})

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with self._write_lock:
            self._cursor().execute(to_duckdb_sql(sql), _params(params))

    def close(self) -> None:
        self._conn.close()


def _append(cur: duckdb.DuckDBPyConnection, spec: TableSpec, data: pa.Table) -> None:
    names = ", ".join(f'"{n}"' for n in data.column_names)
    # DuckDB finds the Arrow table by its Python name (a replacement scan): a third cheaper
    # per insert than registering and unregistering it, two statements more.
    spyglass_batch = data  # noqa: F841 -- read by DuckDB from this frame
    cur.execute(f"INSERT INTO {spec.name} ({names}) SELECT {names} FROM spyglass_batch")


def _params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    import datetime as dt

    return {k: utc_naive(v) if isinstance(v, dt.datetime) else v for k, v in params.items()}
