"""Liveness, readiness and self-metrics."""

from __future__ import annotations

from spyglass.kernel import health


def test_healthz_and_readyz_pass(client):
    live = client.get("/healthz")
    assert live.status_code == 200
    assert live.headers["content-type"] == "application/health+json"
    ready = client.get("/readyz")
    body = ready.json()
    assert ready.status_code == 200 and body["status"] == "pass"
    journaled = client.app.state.runtime.store.journal_status() is not None  # embedded DuckDB
    assert set(body["checks"]) == {
        "metadata:responseTime", "telemetry:responseTime", "writer:queue", "disk:free"
    } | ({"journal:waiting"} if journaled else set())
    assert all(c[0]["status"] == "pass" for c in body["checks"].values())


def test_readyz_fails_with_503_when_a_dependency_is_down(client, monkeypatch):
    rt = client.app.state.runtime

    def broken() -> None:
        raise ConnectionError("metadata database unreachable")

    monkeypatch.setattr(rt.db, "ping", broken)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "fail"
    check = r.json()["checks"]["metadata:responseTime"][0]
    assert check["status"] == "fail" and "unreachable" in check["output"]


def test_readyz_warns_on_low_disk_and_full_queue(client, monkeypatch):
    import shutil

    usage = shutil.disk_usage("/")
    monkeypatch.setattr(health.shutil, "disk_usage",
                        lambda _p: usage._replace(free=health.DISK_WARN_BYTES - 1))
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "warn"
    monkeypatch.setattr(health.shutil, "disk_usage",
                        lambda _p: usage._replace(free=health.DISK_FAIL_BYTES - 1))
    assert client.get("/readyz").status_code == 503


def test_readyz_warns_then_fails_while_the_journal_cannot_load(client, tenant_factory,
                                                               monkeypatch):
    store = client.app.state.runtime.store
    if store.journal_status() is None:
        return  # the ClickHouse store has no journal
    t = tenant_factory("journal")

    def disk_full(batches, seq):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.inner, "insert_all", disk_full)
    r = client.post(f"/api/{t.project_id}/envelope/?sentry_key={t.public_key}",
                    content=b'{}\n{"type":"event"}\n{"message":"kept in the journal"}\n')
    assert r.status_code == 200  # durable in the journal
    store.settle()  # a read tries to load it (as the loader would), and fails
    check = client.get("/readyz").json()["checks"]["journal:waiting"][0]
    assert check["status"] == "warn" and check["observedValue"] == 1
    assert "No space left" in check["output"]
    monkeypatch.setattr(store, "max_waiting_bytes", 0)
    assert client.get("/readyz").status_code == 503
    monkeypatch.undo()
    store.settle()
    assert client.get("/readyz").json()["checks"]["journal:waiting"][0]["status"] == "pass"
    assert store.scalar("SELECT count(*) FROM events WHERE project_id = {p:UInt64}",
                        {"p": t.project_id}) == 1


def test_metrics_expose_ingest_queue_and_latency(client, tenant_factory):
    t = tenant_factory("metrics")
    client.post(f"/api/{t.project_id}/envelope/?sentry_key={t.public_key}",
                content=b'{}\n{"type":"event"}\n{"message":"m"}\n')
    text = client.get("/metrics").text
    for name in (
        "spyglass_ingest_items_total",
        "spyglass_writer_queue_rows",
        "spyglass_writer_flush_seconds_bucket",
        "spyglass_writer_rows_total",
        "spyglass_http_request_seconds_bucket",
    ):
        assert name in text, name
    assert 'route="/api/{project_id}/envelope/"' in text
