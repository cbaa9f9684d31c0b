"""Ingest workers: the same events, issues and rows as processing in the server process;
bad bodies get the same 4xx; a lost worker costs no event; a hung one is stopped; one that
cannot start is not started per request; rule changes reach the workers."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import signal
import sys
import zlib
from contextlib import contextmanager

import orjson
import sentry_sdk
from fastapi.testclient import TestClient
from sdk_capture import sdk
from sqlalchemy import select

from spyglass.app import create_app
from spyglass.errors.envelope import parse_envelope
from spyglass.errors.items import ItemConfig, RuleTexts, process_items
from spyglass.errors.models import ErrorSettings, Issue
from spyglass.errors.offload import Task
from spyglass.errors.worker import Worker
from spyglass.kernel import selfmetrics

NOW = dt.datetime(2026, 11, 27, 12, 0, 0)


def checkout(order: int) -> None:
    raise ValueError(f"card declined for order {order}")


def profile(user: str) -> None:
    {}[user]


def sdk_envelopes() -> list[bytes]:
    with sdk(release="shop@3.1", environment="prod") as envelopes:
        sentry_sdk.set_user({"id": "u-7", "email": "ann@example.com"})
        sentry_sdk.set_tag("region", "eu")
        for order in (1, 2, 3):
            try:
                checkout(order)
            except ValueError:
                sentry_sdk.capture_exception()
        for user in ("ann", "bob"):
            try:
                profile(user)
            except KeyError:
                sentry_sdk.capture_exception()
        sentry_sdk.capture_message("password=hunter2 reset for 4111 1111 1111 1111")
    return envelopes


def _send(client: TestClient, project_id: int, key: str, body: bytes, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(f"/api/{project_id}/envelope/?sentry_key={key}", content=body,
                       headers=headers)


def _stored(client: TestClient, project_id: int) -> tuple[list, list]:
    with client.app.state.runtime.db.session() as s:
        issues = [(i.title, i.variant, i.level, i.first_release) for i in s.scalars(
            select(Issue).where(Issue.project_id == project_id).order_by(Issue.id))]
    rows = client.app.state.runtime.store.rows(
        "SELECT event_id, group_hash, title, culprit, level, release, environment, user_key, "
        "tags, data FROM events WHERE project_id = {p:UInt64} ORDER BY event_id",
        {"p": project_id})
    events = []
    for row in rows:
        data = orjson.loads(row.pop("data"))
        data.pop("received"), data.pop("issue_id")
        row["tags"] = dict(row["tags"])
        events.append((row, data))
    return issues, events


@contextmanager
def _serving(settings, tenant_maker, workers: int, tenant: str):  # type: ignore[no-untyped-def]
    """An in-process server with ``workers`` ingest workers, and a tenant on it."""
    settings.ingest_workers = workers
    with TestClient(create_app(settings), base_url=settings.public_url) as client:
        yield client, tenant_maker(client.app.state.runtime.db, tenant)


def _run(settings, tenant_maker, workers: int, envelopes: list[bytes]):  # type: ignore[no-untyped-def]
    with _serving(settings, tenant_maker, workers, f"w{workers}") as (client, t):
        # The first request loads the project's rules and key into the server's caches;
        # every later one is eligible for a worker.
        for body in envelopes:
            assert _send(client, t.project_id, t.public_key, gzip.compress(body),
                         **{"Content-Encoding": "gzip"}).status_code == 200
        service = client.app.state.errors
        handled = service.workers.completed if service.workers else 0
        return _stored(client, t.project_id), handled


def test_workers_store_exactly_what_the_server_process_stores(settings, tmp_path, tenant_maker):
    envelopes = sdk_envelopes()
    settings.data_dir = tmp_path / "inline"
    inline, _ = _run(settings, tenant_maker, 0, envelopes)
    settings.data_dir = tmp_path / "offloaded"
    offloaded, handled = _run(settings, tenant_maker, 2, envelopes)
    assert handled == len(envelopes) - 1  # all but the first, which warmed the caches
    by = {where: selfmetrics.REGISTRY.get_sample_value(
        "spyglass_ingest_processed_by_total", {"where": where}) for where in
        ("worker", "server:config_not_cached", "server:no_workers")}
    assert by["worker"] >= handled and by["server:config_not_cached"] >= 1
    assert by["server:no_workers"] >= len(envelopes)  # the run without workers
    assert offloaded[0] == inline[0] and len(inline[0]) == 3
    for (row_a, data_a), (row_b, data_b) in zip(offloaded[1], inline[1], strict=True):
        assert row_a == row_b
        assert data_a == data_b
    message = [d for _r, d in offloaded[1] if d.get("message", "").startswith("password")]
    assert message and "4111" not in orjson.dumps(message[0]).decode()


def test_worker_answers_bad_bodies_like_the_server():
    worker = Worker()
    rules = RuleTexts()

    def task(raw: bytes, encoding: str = "", store: bool = False, limit: int = 1 << 20) -> Task:
        return Task(7, 1, rules, raw, encoding, store, limit, NOW)

    assert worker.handle(task(b"not gzip", "gzip")).status == 400
    bomb = zlib.compress(b"{" + b" " * (4 << 20) + b"}")
    reply = worker.handle(task(bomb, "deflate"))
    assert reply.status == 413 and "limit" in reply.message
    assert worker.handle(task(b"[1, 2]", store=True)).status == 400
    assert worker.handle(task(b"{broken header\n{}\n")).status == 400
    assert worker.handle(task(b"x", "compress")).status in (400, 415)
    good = sdk_envelopes()[0]
    reply = worker.handle(task(good))
    assert reply.status == 200 and reply.items is not None
    expected = process_items(ItemConfig.from_texts(rules), 7, parse_envelope(good), NOW)
    assert [e.row for e in reply.items.events] == [e.row for e in expected.events]


def test_each_reply_leaves_as_soon_as_it_is_ready(monkeypatch):
    """Tasks that arrive together are answered one by one: the first reply does not wait
    for the tasks read with it (which made a burst's requests wait for each other)."""
    import pickle
    import socket
    import threading

    from spyglass.errors import worker as worker_module
    from spyglass.errors.offload import HEADER, Reply

    second_may_finish = threading.Event()

    def handle(self, task: Task) -> Reply:  # type: ignore[no-untyped-def]
        if task.project_id == 2:
            assert second_may_finish.wait(10), "the first reply was held back"
        return Reply(200, f"project {task.project_id}")

    monkeypatch.setattr(worker_module.Worker, "handle", handle)
    server, worker_end = socket.socketpair()
    thread = threading.Thread(target=worker_module.serve, args=(worker_end,), daemon=True)
    thread.start()
    frames = b""
    for task_id, project in ((1, 1), (2, 2)):
        frame = pickle.dumps((task_id, Task(project, 1, None, b"", "", False, 0, NOW)))
        frames += HEADER.pack(len(frame)) + frame
    server.sendall(frames)  # both tasks in one write: the worker reads them together
    server.settimeout(5)
    (size,) = HEADER.unpack(server.recv(HEADER.size, socket.MSG_WAITALL))
    task_id, reply = pickle.loads(server.recv(size, socket.MSG_WAITALL))
    assert (task_id, reply.message) == (1, "project 1")  # while task 2 is still being handled
    second_may_finish.set()
    (size,) = HEADER.unpack(server.recv(HEADER.size, socket.MSG_WAITALL))
    assert pickle.loads(server.recv(size, socket.MSG_WAITALL))[0] == 2
    server.close()
    thread.join(5)
    worker_end.close()


def test_a_lost_worker_costs_no_event(settings, tenant_maker):
    envelopes = sdk_envelopes()
    with _serving(settings, tenant_maker, 1, "lost") as (client, t):
        workers = client.app.state.errors.workers
        for body in envelopes[:2]:
            assert _send(client, t.project_id, t.public_key, body).status_code == 200
        first = workers._workers[0].proc
        assert first is not None and workers.completed == 1
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        for body in envelopes[2:]:
            assert _send(client, t.project_id, t.public_key, body).status_code == 200
        second = workers._workers[0].proc
        assert second is not None and second.pid != first.pid and second.poll() is None
        assert selfmetrics.REGISTRY.get_sample_value(
            "spyglass_ingest_worker_restarts_total") >= 1
        issues, events = _stored(client, t.project_id)
        assert len(events) == len(envelopes) and len(issues) == 3


def test_rule_changes_reach_the_workers(settings, tenant_maker):
    with _serving(settings, tenant_maker, 1, "rules") as (client, t):
        service = client.app.state.errors

        def send_order() -> dict:
            with sdk() as envelopes:
                sentry_sdk.set_extra("order_ref", "A-1234")
                sentry_sdk.capture_message("order failed")
            assert _send(client, t.project_id, t.public_key, envelopes[0]).status_code == 200
            event_id = orjson.loads(envelopes[0].split(b"\n")[0])["event_id"]
            _issues, events = _stored(client, t.project_id)
            return next(data for _row, data in events if data["event_id"] == event_id)

        send_order()  # loads the rules and the key in the server process
        assert send_order()["extra"]["order_ref"] == "A-1234"  # a worker, with those rules
        with client.app.state.runtime.db.session() as s:
            s.merge(ErrorSettings(project_id=t.project_id, sensitive_fields="order_ref"))
            s.commit()
        service.processor.forget_config(t.project_id)  # what saving the settings page does
        send_order()  # loads the new rules in the server process
        assert send_order()["extra"]["order_ref"] == "[Filtered]"
        assert service.workers.completed == 2


def test_a_hung_worker_is_stopped_and_its_request_refused():
    import asyncio

    from spyglass.errors.offload import IngestWorkers, WorkerTimeout

    body = sdk_envelopes()[0]

    def task(rules: RuleTexts | None = None) -> Task:
        return Task(7, 1, rules or RuleTexts(), body, "", False, 1 << 20, NOW)

    async def scenario() -> None:
        pool = IngestWorkers(1, timeout=0.5)
        try:
            assert (await pool.run(task())).status == 200
            hung = pool._workers[0].proc
            os.kill(hung.pid, signal.SIGSTOP)  # as if a request made it spin
            try:
                await pool.run(task())
                raise AssertionError("a hung worker answered")
            except WorkerTimeout:
                pass
            assert hung.wait(5) == -signal.SIGKILL
            assert (await pool.run(task())).status == 200  # a new worker took over
            assert pool._workers[0].proc.pid != hung.pid
        finally:
            pool.stop()

    asyncio.run(scenario())


def test_workers_that_cannot_start_are_not_started_per_request(settings, tenant_maker):
    envelopes = sdk_envelopes()
    with _serving(settings, tenant_maker, 2, "broken") as (client, t):
        workers = client.app.state.errors.workers
        broken = workers._workers[1]
        broken.command = [sys.executable, "-c", "raise SystemExit(3)"]
        for body in envelopes:  # all stored: the good worker and the server take them
            assert _send(client, t.project_id, t.public_key, body).status_code == 200
        first = broken.proc
        assert first is not None and first.wait(5) == 3
        assert broken.retry_at > 0 and not broken.alive
        for body in sdk_envelopes()[:3]:
            assert _send(client, t.project_id, t.public_key, body).status_code == 200
        assert broken.proc is first  # in its backoff: not started again for each request
        _issues, events = _stored(client, t.project_id)
        assert len(events) == len(envelopes) + 3
