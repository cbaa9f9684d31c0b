"""Sentry structured logs (``log`` envelope items) from the real sentry-sdk land in ``logs``."""

from __future__ import annotations

import orjson
import sentry_sdk
from sdk_capture import sdk
from sentry_sdk import logger


def _post(client, tenant, body: bytes):  # type: ignore[no-untyped-def]
    return client.post(f"/api/{tenant.project_id}/envelope/?sentry_key={tenant.public_key}",
                       content=body)


def _logs(client, project_id: int) -> list[dict]:  # type: ignore[no-untyped-def]
    return client.app.state.runtime.store.rows(
        "SELECT * FROM logs WHERE project_id = {p:UInt64} ORDER BY severity_number",
        {"p": project_id})


def test_sdk_logs_are_stored_with_severity_trace_and_attributes(client, tenant_factory,
                                                               ) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_factory("logs")
    with sdk(enable_logs=True, release="shop@1.0", environment="prod", server_name="web-1",
             traces_sample_rate=1.0) as envelopes:
        with sentry_sdk.start_transaction(name="checkout") as tx:
            logger.info("cart of {user} has {items} items", user="ada", items=3,
                        attributes={"password": "hunter2"})
        logger.warning("stock low")
        logger.error("payment failed for order {order}", order=42)
        logger.fatal("database gone")
        logger.trace("fine detail")
    logs = [e for e in envelopes if b'"type":"log"' in e]
    assert logs, "the SDK sent no log item"
    for body in envelopes:
        assert _post(client, tenant, body).status_code == 200

    rows = _logs(client, tenant.project_id)
    assert [(r["severity_number"], r["severity_text"], r["body"]) for r in rows] == [
        (1, "trace", "fine detail"),
        (9, "info", "cart of ada has 3 items"),
        (13, "warn", "stock low"),
        (17, "error", "payment failed for order 42"),
        (21, "fatal", "database gone"),
    ]
    info = rows[1]
    assert info["source"] == "sentry" and info["service"] == "web-1"
    assert info["trace_id"] == tx.trace_id and info["span_id"] == tx.span_id
    attrs = dict(info["attributes"])
    assert attrs["sentry.message.template"] == "cart of {user} has {items} items"
    assert attrs["sentry.message.parameter.items"] == "3"
    assert attrs["sentry.release"] == "shop@1.0" and attrs["sentry.environment"] == "prod"
    assert attrs["password"] == "[Filtered]"  # scrubbed like events
    assert info["timestamp"].year > 2000


def test_bad_log_items_are_invalid_and_neighbours_kept(client, tenant_factory,
                                                      ) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_factory("badlogs")
    good = {"items": [{"timestamp": 1.7e9, "level": "info", "body": "ok",
                       "attributes": {"sentry.service": {"type": "string", "value": "api"},
                                      "flag": {"type": "boolean", "value": True}}},
                      "not an object"]}
    lines = [{}, {"type": "log", "content_type": "application/vnd.sentry.items.log+json"},
             {"items": "nope"},
             {"type": "log", "content_type": "application/vnd.sentry.items.log+json"}, good]
    body = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"
    assert _post(client, tenant, body).status_code == 200
    (row,) = _logs(client, tenant.project_id)
    assert row["service"] == "api" and row["body"] == "ok" and row["severity_number"] == 9
    assert dict(row["attributes"])["flag"] == "true"
    outcomes = client.app.state.runtime.store.rows(
        "SELECT outcome FROM outcomes WHERE project_id = {p:UInt64}", {"p": tenant.project_id})
    assert [o["outcome"] for o in outcomes] == ["invalid"]
