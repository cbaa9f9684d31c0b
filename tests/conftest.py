"""Shared fixtures. The suite runs on one of two storage stacks, chosen by environment:

- ``SPYGLASS_TEST_STACK=embedded`` (default): SQLite + DuckDB in a temporary data directory.
- ``SPYGLASS_TEST_STACK=scaled``: Postgres (``SPYGLASS_TEST_DATABASE_URL``, one fresh schema per
  test) + ClickHouse SQL on the chDB engine, or on a real server when
  ``SPYGLASS_TEST_CLICKHOUSE_URL`` is set.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from spyglass.config import Settings, load_settings
from spyglass.kernel.meta.db import normalize_url

STACK = os.environ.get("SPYGLASS_TEST_STACK", "embedded")
PG_URL = os.environ.get("SPYGLASS_TEST_DATABASE_URL", "postgresql://spyglass:spyglass@localhost/spyglass")
CH_URL = os.environ.get("SPYGLASS_TEST_CLICKHOUSE_URL", "")


def pytest_report_header() -> str:
    where = f"postgres={PG_URL} clickhouse={CH_URL or 'chDB'}" if STACK == "scaled" else ""
    return f"spyglass storage stack: {STACK} {where}"


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A Postgres URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(normalize_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings for the selected stack, in a fresh data directory."""
    s = load_settings(tmp_path / "data")
    s.jobs_enabled = False  # tests run jobs explicitly
    s.otlp_grpc_port = 0  # parallel tests must not fight over 4317; OTel tests pick a free port
    # In-process apps process ingest in threads; live servers (server_factory) use the
    # default ingest workers, and tests/errors/test_offload.py covers them directly.
    s.ingest_workers = 0
    s.log_format = "console"
    if STACK == "scaled":
        s.database_url = request.getfixturevalue("pg_schema_url")
        if CH_URL:
            db = "t_" + uuid.uuid4().hex[:12]
            from spyglass.kernel.telemetry.clickhouse import ClickHouseStore

            server = ClickHouseStore.from_url(CH_URL)
            server.execute(f"CREATE DATABASE {db}")
            server.close()
            s.clickhouse_url = CH_URL.rstrip("/") + "/" + db
        else:
            s.clickhouse_url = f"chdb://{tmp_path / 'chdb'}"
    s.ensure_data_dir()
    return s


@pytest.fixture
def runtime(settings: Settings):
    from spyglass.app import load_features
    from spyglass.kernel.runtime import Runtime

    load_features()
    rt = Runtime(settings)
    rt.start()
    yield rt
    rt.stop()


@pytest.fixture
def client(settings: Settings):
    from fastapi.testclient import TestClient

    from spyglass.app import create_app

    with TestClient(create_app(settings), base_url=settings.public_url) as c:
        yield c


@dataclass
class Tenant:
    """A user with an API token, an organization and a project with its ingest key."""

    email: str
    password: str
    token: str
    org: str
    project_id: int
    public_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(db, name: str, role: str = "owner") -> Tenant:  # type: ignore[no-untyped-def]
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.models import Role

    email, password = f"{name}@example.com", "correct horse battery"
    with db.session() as s:
        user = accounts.create_user(s, email, password)
        org = accounts.get_or_create_org(s, f"org-{name}")
        accounts.set_member(s, org, email, Role(role))
        project = accounts.create_project(s, org, f"{name} app")
        key = accounts.active_key(s, project)
        token = accounts.create_api_token(s, user, "test").token
        return Tenant(email, password, token, org.slug, project.id, key.public_key)


@pytest.fixture
def tenant_maker():  # type: ignore[no-untyped-def]
    """``make_tenant(db, name, role)`` for tests that have a runtime but no client."""
    return make_tenant


@pytest.fixture
def tenant_factory(client):  # type: ignore[no-untyped-def]
    db = client.app.state.runtime.db
    return lambda name, role="owner": make_tenant(db, name, role)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """``spyglass serve`` running as a real subprocess."""

    url: str
    process: subprocess.Popen
    settings: Settings
    log_path: Path

    def wait_ready(self, timeout: float = 30) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(settings: Settings, log_path: Path) -> Server:
    port = free_port()
    while port == settings.otlp_grpc_port:  # (both were free: the same port, twice)
        port = free_port()
    env = dict(os.environ)
    env.update({
        "SPYGLASS_DATABASE_URL": settings.database_url,
        "SPYGLASS_CLICKHOUSE_URL": settings.clickhouse_url,
        "SPYGLASS_JOBS_ENABLED": "false",
        "SPYGLASS_OTLP_GRPC_PORT": str(settings.otlp_grpc_port),
    })
    log = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "spyglass", "serve", "--port", str(port),
         "--data-dir", str(settings.data_dir)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    settings.port = port
    return Server(f"http://127.0.0.1:{port}", process, settings, log_path)


@pytest.fixture
def server_factory(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    servers: list[Server] = []

    def make() -> Server:
        for attempt in range(3):
            server = start_server(settings, tmp_path / "server.log")
            servers.append(server)
            try:
                server.wait_ready()
            except RuntimeError as exc:
                # A free port taken by another process before the server bound it.
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                continue
            return server
        raise AssertionError("unreachable")

    yield make
    for server in servers:
        server.stop()
