"""Dialect-neutral table definitions that each store renders into its own DDL.

A feature declares its tables once with :func:`register_table`; the app creates them on
start in whichever store is configured. Every table has ``project_id`` and a time column, so
tenancy and retention work the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

#: logical type -> (DuckDB type, ClickHouse type, Arrow type)
TYPES: dict[str, tuple[str, str, pa.DataType]] = {
    "string": ("VARCHAR", "String", pa.string()),
    "lowcard": ("VARCHAR", "LowCardinality(String)", pa.string()),
    "bool": ("BOOLEAN", "Bool", pa.bool_()),
    "uint8": ("UTINYINT", "UInt8", pa.uint8()),
    "uint16": ("USMALLINT", "UInt16", pa.uint16()),
    "uint32": ("UINTEGER", "UInt32", pa.uint32()),
    "uint64": ("UBIGINT", "UInt64", pa.uint64()),
    "int32": ("INTEGER", "Int32", pa.int32()),
    "int64": ("BIGINT", "Int64", pa.int64()),
    "float64": ("DOUBLE", "Float64", pa.float64()),
    # Microsecond UTC instants. DuckDB keeps them naive (the store runs in UTC).
    "datetime": ("TIMESTAMP", "DateTime64(6, 'UTC')", pa.timestamp("us")),
    "map": ("MAP(VARCHAR, VARCHAR)", "Map(String, String)", pa.map_(pa.string(), pa.string())),
    "strings": ("VARCHAR[]", "Array(String)", pa.list_(pa.string())),
    "floats": ("DOUBLE[]", "Array(Float64)", pa.list_(pa.float64())),
    "uints": ("UBIGINT[]", "Array(UInt64)", pa.list_(pa.uint64())),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    #: ClickHouse compression codec, for example "Delta, ZSTD(1)"; ignored by DuckDB.
    codec: str = ""
    #: DuckDB compression forced for this column, for example "zstd" for large JSON text:
    #: DuckDB otherwise analyses every method for every segment it writes, which for the
    #: events' 16 KB payloads cost a third of the insert (docs/benchmarks.md). Empty lets
    #: DuckDB choose; ignored by ClickHouse.
    duckdb_compression: str = ""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown column type {self.type!r} for {self.name}")


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    #: Sort key; ClickHouse's ORDER BY, which also makes its primary index.
    order_by: tuple[str, ...]
    time_column: str = "timestamp"
    #: Whether retention applies (a table of rollups may keep its own rules).
    retention: bool = True
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _arrow_schema: pa.Schema = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_arrow_schema", pa.schema(
            [pa.field(c.name, TYPES[c.type][2]) for c in self.columns]))
        for required in ("project_id", self.time_column, *self.order_by):
            if required not in self._names:
                raise ValueError(f"table {self.name} lacks column {required}")

    @property
    def arrow_schema(self) -> pa.Schema:
        return self._arrow_schema

    def has(self, name: str) -> bool:
        return name in self._names


_TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    existing = _TABLES.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"table {spec.name} registered twice with different definitions")
    _TABLES[spec.name] = spec
    return spec


def registered_tables() -> dict[str, TableSpec]:
    return dict(_TABLES)
