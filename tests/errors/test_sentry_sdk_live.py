"""The real Python ``sentry-sdk`` against a live server, over its own HTTP transport:
unhandled and chained exceptions, breadcrumbs, user, tags, attachments, sessions,
transactions, with gzip and brotli request bodies."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from spyglass.cli import main
from spyglass.kernel.telemetry import open_telemetry_store


def _project(settings) -> dict:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(main, ["project", "create", "--org", "acme", "--name", "live", "--json",
                                  "--data-dir", str(settings.data_dir)],
                           env={"SPYGLASS_DATABASE_URL": settings.database_url})
    assert r.exit_code == 0, r.output
    return orjson.loads(r.output)


APP = """
import sentry_sdk, sys
sentry_sdk.init(dsn=sys.argv[1], release="shop@2.0.0", environment="prod",
                traces_sample_rate=1.0, _experiments={{"transport_compression_algo": sys.argv[2]}})
sentry_sdk.set_user({{"id": "u-1", "email": "ann@example.com"}})
sentry_sdk.set_tag("region", "eu-west")
sentry_sdk.add_breadcrumb(category="cart", message="added item 42", level="info")
sentry_sdk.get_isolation_scope().add_attachment(bytes=b"debug log", filename="debug.txt")
with sentry_sdk.start_transaction(op="task", name="nightly-report"):
    with sentry_sdk.start_span(op="db.query", name="SELECT 1"):
        pass
def load_config():
    raise FileNotFoundError("config.yaml")
def start():
    try:
        load_config()
    except FileNotFoundError as exc:
        raise RuntimeError("cannot start") from exc
start()  # unhandled: the SDK's excepthook reports it, then the process exits
"""


@pytest.mark.parametrize("algo", ["gzip", "br"])
def test_unhandled_chained_exception_with_context(server_factory, settings, algo, tmp_path):
    project = _project(settings)
    server = server_factory()
    dsn = project["dsn"].replace(":8000/", f":{server.url.rsplit(':', 1)[1]}/")
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP.format()))
    done = subprocess.run([sys.executable, str(script), dsn, algo], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "cannot start" in done.stderr
    server.stop()

    store = open_telemetry_store(settings.clickhouse_url, settings.data_dir)
    try:
        [event] = store.rows("SELECT data, issue_id, release, environment, user_key, tags "
                             "FROM events WHERE project_id = {p:UInt64}", {"p": project["id"]})
        attachments = store.rows("SELECT filename FROM attachments WHERE project_id = {p:UInt64}",
                                 {"p": project["id"]})
        transactions = store.rows("SELECT name FROM transactions WHERE project_id = {p:UInt64}",
                                  {"p": project["id"]})
    finally:
        store.close()
    data = orjson.loads(event["data"])
    chain = data["exception"]["values"]
    assert [e["type"] for e in chain] == ["FileNotFoundError", "RuntimeError"]
    assert chain[-1]["mechanism"]["handled"] is False
    assert [f["function"] for f in chain[-1]["stacktrace"]["frames"]][-1] == "start"
    assert data["breadcrumbs"]["values"][-1]["message"] == "added item 42"
    assert (event["release"], event["environment"], event["user_key"]) == \
        ("shop@2.0.0", "prod", "id:u-1")
    assert dict(event["tags"])["region"] == "eu-west" and dict(event["tags"])["handled"] == "no"
    assert {a["filename"] for a in attachments} == {"debug.txt"}
    assert [t["name"] for t in transactions] == ["nightly-report"]

    from spyglass.errors.models import Issue
    from spyglass.kernel.meta.db import Database

    db = Database(settings.metadata_url)
    try:
        with db.session() as s:
            issue = s.scalar(select(Issue).where(Issue.id == event["issue_id"]))
            assert issue.title.startswith("RuntimeError: cannot start")
    finally:
        db.close()
