"""``spyglass demo`` starts a server that fills itself from the real sentry-sdk."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time

import httpx
import orjson
import pytest
from conftest import free_port
from sqlalchemy import select

from spyglass.errors.models import Issue
from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.passwords import verify_password
from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import Organization, Project
from spyglass.kernel.telemetry import open_telemetry_store

RUN_S = 15


@pytest.mark.slow
def test_demo_fills_a_demo_organization(settings, tmp_path):
    port = free_port()
    env = {**os.environ, "SPYGLASS_DATABASE_URL": settings.database_url,
           "SPYGLASS_CLICKHOUSE_URL": settings.clickhouse_url, "SPYGLASS_OTLP_GRPC_PORT": "0"}
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "spyglass", "demo", "--port", str(port),
             "--data-dir", str(settings.data_dir)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        time.sleep(RUN_S)
        assert process.poll() is None, log_path.read_text()[-3000:]
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    output = log_path.read_text()
    password = re.search(r"email:\s+demo@example.com\s+password:\s+(\S+)", output)
    assert password, output[-3000:]
    assert '"status": 5' not in output and '"status":5' not in output  # no 5xx answers

    db = Database(settings.metadata_url)
    try:
        with db.session() as s:
            user = accounts.user_by_email(s, "demo@example.com")
            assert user is not None and verify_password(user.password_hash, password.group(1))
            assert accounts.user_by_email(s, "admin@localhost") is not None  # as serve does
            org = s.scalar(select(Organization).where(Organization.slug == "demo"))
            projects = {p.name: p for p in s.scalars(select(Project).where(Project.org_id == org.id))}
            assert {"checkout-api", "storefront"} <= set(projects)
            assert projects["checkout-api"].platform == "python"
            backend, browser = projects["checkout-api"].id, projects["storefront"].id
            issues = list(s.scalars(select(Issue).where(Issue.project_id == backend)))
            browser_issues = list(s.scalars(select(Issue).where(Issue.project_id == browser)))
    finally:
        db.close()
    assert len(issues) >= 4, [i.title for i in issues]
    assert browser_issues
    assert any(i.culprit.startswith("spyglass.demo_app in ") for i in issues)

    store = open_telemetry_store(settings.clickhouse_url, settings.data_dir)
    try:
        events = store.rows("SELECT release, user_key, tags, data FROM events "
                            "WHERE project_id = {p:UInt64}", {"p": backend})
        sessions = store.rows("SELECT release, status, errors, timestamp FROM sessions "
                              "WHERE project_id = {p:UInt64}", {"p": backend})
    finally:
        store.close()
    # The project also gets exceptions from the demo's OTel services; look at the SDK's own.
    events = [e for e in events if orjson.loads(e["data"]).get("sdk", {}).get("name")
              == "sentry.python"]  # the real sentry-sdk sent them
    assert len(events) >= 10
    assert len({e["user_key"] for e in events}) >= 5
    assert {"region", "plan", "payment_method"} <= set(dict(events[0]["tags"]))
    releases = {e["release"] for e in events} | {s["release"] for s in sessions}
    assert {"checkout@1.4.0", "checkout@1.4.1"} <= releases, releases
    assert len(sessions) >= 20 and any(s["errors"] for s in sessions)
    # The history is simulated: sessions started hours before now.
    started = [s["timestamp"] for s in sessions]
    assert max(started) - min(started) > dt.timedelta(hours=3)
