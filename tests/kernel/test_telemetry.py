"""The columnar stores behave the same: DuckDB (embedded) and ClickHouse SQL (scaled stack)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from spyglass.kernel.telemetry import Column, TableSpec, open_telemetry_store

SPEC = TableSpec(
    "t_points",
    (
        Column("project_id", "uint64"),
        Column("timestamp", "datetime"),
        Column("service", "lowcard"),
        Column("value", "float64"),
        Column("count", "int64"),
        Column("ok", "bool"),
        Column("attributes", "map"),
        Column("labels", "strings"),
    ),
    order_by=("project_id", "service", "timestamp"),
)
T0 = dt.datetime(2026, 11, 1, 12, 0, 0, 250_000)


@pytest.fixture
def store(settings):
    s = open_telemetry_store(settings.clickhouse_url, settings.data_dir)
    s.ensure_table(SPEC)
    s.ensure_table(SPEC)  # idempotent
    yield s
    s.close()


def rows(project_id: int, n: int, start: dt.datetime = T0) -> list[dict]:
    return [
        {
            "project_id": project_id,
            "timestamp": start + dt.timedelta(minutes=i),
            "service": f"svc-{i % 3}",
            "value": i * 1.5,
            "count": i,
            "ok": i % 2 == 0,
            "attributes": {"http.route": f"/r/{i}", "quote": "it's \\ \"fine\""},
            "labels": ["a", str(i)],
        }
        for i in range(n)
    ]


def test_round_trip_keeps_types_and_microseconds(store):
    store.insert(SPEC, pa.Table.from_pylist(rows(1, 3), schema=SPEC.arrow_schema))
    got = store.rows("SELECT * FROM t_points ORDER BY timestamp")
    assert got[0]["timestamp"] == T0 and got[0]["timestamp"].tzinfo is None
    assert dict(got[1]["attributes"])["quote"] == "it's \\ \"fine\""
    assert got[2]["labels"] == ["a", "2"] and got[2]["ok"] is True and got[2]["count"] == 2


def test_parameters_are_bound_not_spliced(store):
    store.insert(SPEC, pa.Table.from_pylist(rows(1, 5), schema=SPEC.arrow_schema))
    hostile = "svc-1' OR '1'='1"
    assert store.count("t_points") == 5
    n = store.scalar("SELECT count(*) FROM t_points WHERE service = {s:String}", {"s": hostile})
    assert n == 0
    n = store.scalar(
        "SELECT count(*) FROM t_points WHERE project_id = {p:UInt64} AND timestamp >= {t:DateTime64(6)}",
        {"p": 1, "t": T0 + dt.timedelta(minutes=2)},
    )
    assert n == 3


def test_aggregation_by_group(store):
    store.insert(SPEC, pa.Table.from_pylist(rows(7, 9), schema=SPEC.arrow_schema))
    got = store.rows(
        "SELECT service, count(*) AS n, sum(value) AS total FROM t_points "
        "WHERE project_id = {p:UInt64} GROUP BY service ORDER BY service",
        {"p": 7},
    )
    assert [(r["service"], r["n"]) for r in got] == [("svc-0", 3), ("svc-1", 3), ("svc-2", 3)]
    assert sum(r["total"] for r in got) == pytest.approx(sum(i * 1.5 for i in range(9)))


def test_delete_before_is_per_project(store):
    old = T0 - dt.timedelta(days=40)
    store.insert(SPEC, pa.Table.from_pylist(rows(1, 4, old) + rows(1, 2) + rows(2, 4, old),
                                            schema=SPEC.arrow_schema))
    store.delete_before(SPEC, 1, T0 - dt.timedelta(days=30))
    assert store.count("t_points", 1) == 2
    assert store.count("t_points", 2) == 4


def test_table_spec_validation():
    with pytest.raises(ValueError):
        TableSpec("bad", (Column("timestamp", "datetime"),), order_by=("timestamp",))
    with pytest.raises(ValueError):
        Column("x", "varchar")


def test_new_columns_are_added_to_existing_tables(store):
    store.insert(SPEC, pa.Table.from_pylist(rows(1, 2), schema=SPEC.arrow_schema))
    grown = TableSpec(SPEC.name, SPEC.columns + (Column("extra", "lowcard"),), SPEC.order_by)
    store.ensure_table(grown)
    store.insert(grown, pa.Table.from_pylist(
        [{**r, "extra": "x"} for r in rows(1, 1)], schema=grown.arrow_schema))
    got = store.rows("SELECT extra FROM t_points ORDER BY extra")
    assert sorted(r["extra"] or "" for r in got) == ["", "", "x"]


def test_dialect_helpers_agree(store):
    store.insert(SPEC, pa.Table.from_pylist(rows(3, 120), schema=SPEC.arrow_schema))
    got = store.rows(
        f"SELECT {store.time_bucket('timestamp', 3600)} AS b, count(*) AS n, "
        f"{store.quantile('value', 0.5)} AS p50, {store.uniq('service')} AS services "
        "FROM t_points GROUP BY b ORDER BY b"
    )
    start = int(T0.replace(tzinfo=dt.UTC).timestamp()) // 3600 * 3600
    assert [(r["b"], r["n"]) for r in got] == [(start, 60), (start + 3600, 60)]
    assert got[0]["p50"] == pytest.approx(29.5 * 1.5, rel=0.05)
    assert got[0]["services"] == 3


def test_numeric_array_columns(store):
    spec = TableSpec("t_hist", (Column("project_id", "uint64"), Column("timestamp", "datetime"),
                                Column("bounds", "floats"), Column("counts", "uints")),
                     order_by=("project_id", "timestamp"))
    store.ensure_table(spec)
    store.insert(spec, pa.Table.from_pylist(
        [{"project_id": 1, "timestamp": T0, "bounds": [0.5, 1.0, 2.5], "counts": [1, 2**63, 3, 0]}],
        schema=spec.arrow_schema))
    [row] = store.rows("SELECT bounds, counts FROM t_hist")
    assert row == {"bounds": [0.5, 1.0, 2.5], "counts": [1, 2**63, 3, 0]}


def test_forced_duckdb_compression_is_in_the_table_definition(tmp_path):
    from spyglass.kernel.telemetry.duckdb import DuckDBStore

    spec = TableSpec(name="payloads", columns=(
        Column("project_id", "uint64"), Column("timestamp", "datetime"),
        Column("body", "string", "ZSTD(3)", duckdb_compression="zstd")),
        order_by=("project_id", "timestamp"))
    s = DuckDBStore(tmp_path / "t.duckdb")
    s.ensure_table(spec)
    sql = s._conn.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'payloads'").fetchone()[0]
    assert "body VARCHAR USING COMPRESSION ZSTD" in sql
    s.insert(spec, pa.Table.from_pylist(
        [{"project_id": 1, "timestamp": T0, "body": "x" * 20000}], schema=spec.arrow_schema))
    assert s.rows("SELECT length(body) AS n FROM payloads") == [{"n": 20000}]
    s.close()


def test_duckdb_memory_limit_comes_from_the_settings(tmp_path):
    from spyglass.config import Settings
    from spyglass.kernel.telemetry.duckdb import DuckDBStore

    limit = DuckDBStore(tmp_path / "a.duckdb", "64MB")
    assert limit._conn.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "61.0 MiB"
    limit.close()
    assert Settings().duckdb_memory_limit == "256MB"  # the default: bounded, unlike DuckDB's 80%


def test_the_server_gives_arrow_memory_back_to_the_system(settings):
    # mimalloc (Arrow's default) kept what the writer and the journal free: 55 MB more RSS
    # on the ingest benchmark.
    import pyarrow as pa

    from spyglass.kernel.runtime import Runtime

    pa.set_memory_pool(pa.mimalloc_memory_pool())
    rt = Runtime(settings)
    try:
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        rt.stop()
