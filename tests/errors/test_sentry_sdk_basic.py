"""The real Python ``sentry-sdk`` delivers events to a live server with only the DSN changed."""

from __future__ import annotations


import sentry_sdk

from spyglass.kernel.telemetry import open_telemetry_store


def test_sdk_events_arrive_and_stay_in_their_project(server_factory, settings):
    from click.testing import CliRunner

    from spyglass.cli import main
    import orjson

    def project(name: str) -> dict:
        r = CliRunner().invoke(main, ["project", "create", "--org", "acme", "--name", name, "--json",
                                      "--data-dir", str(settings.data_dir)],
                               env={"SPYGLASS_DATABASE_URL": settings.database_url})
        assert r.exit_code == 0, r.output
        return orjson.loads(r.output)

    mine, other = project("backend"), project("frontend")
    server = server_factory()
    port = server.url.rsplit(":", 1)[1]
    dsn = mine["dsn"].replace(":8000/", f":{port}/")
    sentry_sdk.init(dsn=dsn, release="shop@1.2.3", environment="test", transport_queue_size=100)
    try:
        try:
            {}["missing"]
        except KeyError:
            sentry_sdk.capture_exception()
        sentry_sdk.capture_message("checkout is slow", level="warning")
        sentry_sdk.flush(timeout=10)
    finally:
        sentry_sdk.get_client().close()
    server.stop()
    store = open_telemetry_store(settings.clickhouse_url, settings.data_dir)
    try:
        rows = store.rows("SELECT project_id, title, level, release, environment, platform "
                          "FROM events ORDER BY title")
    finally:
        store.close()
    assert [(r["project_id"], r["title"], r["level"]) for r in rows] == [
        (mine["id"], "KeyError: 'missing'", "error"),
        (mine["id"], "checkout is slow", "warning"),
    ]
    assert {(r["release"], r["environment"], r["platform"]) for r in rows} == {
        ("shop@1.2.3", "test", "python")
    }
    assert other["id"] not in {r["project_id"] for r in rows}
