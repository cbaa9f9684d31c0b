"""Fixtures for OTLP tests: a real HTTP + gRPC server in this process, and SDK helpers.

The server runs uvicorn in a thread (not a subprocess) so tests can read the telemetry store
directly through the app's runtime: DuckDB and chDB each allow one process at a time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from spyglass.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Tenant:
    project_id: int
    public_key: str


def make_tenant(db: Any, name: str) -> Tenant:
    """An organization with a project and its active ingest key."""
    from spyglass.kernel.auth import accounts

    with db.session() as s:
        org = accounts.get_or_create_org(s, f"org-{name}")
        project = accounts.create_project(s, org, f"{name} app")
        return Tenant(project.id, accounts.active_key(s, project).public_key)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Each test gets its own gRPC port (the default 4317 would collide between runs)."""
    settings.otlp_grpc_port = free_port()
    return settings


@pytest.fixture
def tenant_for():  # type: ignore[no-untyped-def]
    """``tenant_for(app or Database)``: a fresh project with its ingest key."""
    def make(target: Any, name: str = "otel") -> Tenant:
        db = target.state.runtime.db if hasattr(target, "state") else target
        return make_tenant(db, name)

    return make


@pytest.fixture
def port() -> Any:
    """``port()``: a free TCP port on 127.0.0.1."""
    return free_port


@dataclass
class Live:
    url: str
    grpc_target: str
    app: Any
    tenant: Tenant

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    @property
    def store(self) -> Any:
        return self.runtime.store

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return self.store.rows(sql, params)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"x-spyglass-key": self.tenant.public_key, **extra}


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    """``create_app`` served by uvicorn on a free port, with gRPC on ``settings``' port."""
    from spyglass.app import create_app

    settings.port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_config=None,
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    tenant = make_tenant(app.state.runtime.db, "otel")
    try:
        yield Live(f"http://127.0.0.1:{settings.port}", f"127.0.0.1:{settings.otlp_grpc_port}",
                   app, tenant)
    finally:
        server.should_exit = True
        thread.join(30)
