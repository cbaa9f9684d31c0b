"""ClickHouse telemetry store: a server over HTTP (clickhouse-connect) or the embedded chDB engine.

Both speak the same SQL, so the scaled-out store is tested on chDB in CI and against a real
server when ``SPYGLASS_TEST_CLICKHOUSE_URL`` is set.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Protocol
from urllib.parse import urlparse

import pyarrow as pa

from spyglass.kernel.telemetry.schema import TYPES, TableSpec
from spyglass.kernel.telemetry.store import TelemetryStore, utc_naive


class _Backend(Protocol):
    def query(self, sql: str, params: dict[str, Any]) -> pa.Table: ...
    def command(self, sql: str, params: dict[str, Any]) -> None: ...
    def insert(self, table: str, data: pa.Table) -> None: ...
    def close(self) -> None: ...


class _ChdbBackend:
    """chDB: the ClickHouse engine in-process, its data in a directory."""

    def __init__(self, path: str) -> None:
        from chdb import session

        self._session = session.Session(path)
        # chDB sessions are not safe to use from several threads at once.
        self._lock = threading.Lock()

    def query(self, sql: str, params: dict[str, Any]) -> pa.Table:
        with self._lock:
            return self._session.query(sql, "ArrowTable", params=params or None)

    def command(self, sql: str, params: dict[str, Any]) -> None:
        with self._lock:
            self._session.query(sql, "Null", params=params or None)

    def insert(self, table: str, data: pa.Table) -> None:
        names = ", ".join(f"`{n}`" for n in data.column_names)
        spyglass_batch = data  # noqa: F841 -- chDB's Python() reads this local by name
        with self._lock:
            self._session.query(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(spyglass_batch)",
                "Null",
            )

    def close(self) -> None:
        with self._lock:
            self._session.close()


class _HttpBackend:
    """A ClickHouse server through clickhouse-connect."""

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        parsed = urlparse(url)
        secure = parsed.scheme in ("https", "clickhouses")
        self._client = clickhouse_connect.get_client(
            host=parsed.hostname or "localhost",
            port=parsed.port or (8443 if secure else 8123),
            username=parsed.username or "default",
            password=parsed.password or "",
            database=(parsed.path or "/").strip("/") or "default",
            secure=secure,
        )
        self._lock = threading.Lock()

    def query(self, sql: str, params: dict[str, Any]) -> pa.Table:
        return self._client.query_arrow(sql, parameters=params or None)

    def command(self, sql: str, params: dict[str, Any]) -> None:
        self._client.command(sql, parameters=params or None)

    def insert(self, table: str, data: pa.Table) -> None:
        # A synchronous insert is acknowledged once the part is written.
        self._client.insert_arrow(table, data)

    def close(self) -> None:
        self._client.close()


class ClickHouseStore(TelemetryStore):
    dialect = "clickhouse"

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend

    @classmethod
    def from_url(cls, url: str) -> "ClickHouseStore":
        if url.startswith("chdb://"):
            return cls(_ChdbBackend(url[len("chdb://") :] or ":memory:"))
        if url.startswith("clickhouse://"):
            url = "http://" + url[len("clickhouse://") :]
        return cls(_HttpBackend(url))

    def time_bucket(self, column: str, seconds: int) -> str:
        return f"intDiv(toUnixTimestamp({column}), {int(seconds)}) * {int(seconds)}"

    def quantile(self, column: str, q: float) -> str:
        return f"quantile({float(q)})({column})"

    def uniq(self, column: str) -> str:
        return f"uniqExactIf({column}, {column} != '')"

    def ensure_table(self, spec: TableSpec) -> None:
        cols = ", ".join(
            f"`{c.name}` {TYPES[c.type][1]}" + (f" CODEC({c.codec})" if c.codec else "")
            for c in spec.columns
        )
        order = ", ".join(spec.order_by)
        self._backend.command(
            f"CREATE TABLE IF NOT EXISTS {spec.name} ({cols}) ENGINE = MergeTree "
            f"PARTITION BY toYYYYMM({spec.time_column}) ORDER BY ({order})",
            {},
        )
        have = set(self.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String}", {"t": spec.name}).column("name").to_pylist())
        for c in spec.columns:
            if c.name not in have:  # additive schema evolution: new columns only
                codec = f" CODEC({c.codec})" if c.codec else ""
                self._backend.command(
                    f"ALTER TABLE {spec.name} ADD COLUMN `{c.name}` {TYPES[c.type][1]}{codec}", {})

    def insert(self, spec: TableSpec, data: pa.Table) -> None:
        self._backend.insert(spec.name, data)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return _naive_utc(self._backend.query(sql, _params(params)))

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._backend.command(sql, _params(params))

    def close(self) -> None:
        self._backend.close()


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if isinstance(value, dt.datetime):
            value = utc_naive(value).strftime("%Y-%m-%d %H:%M:%S.%f")
        out[key] = value
    return out


def _naive_utc(table: pa.Table) -> pa.Table:
    """Return instants as naive UTC, as the DuckDB store does, so callers see one shape."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            naive = table.column(i).cast(pa.timestamp(f.type.unit))
            table = table.set_column(i, f.name, naive)
    return table
