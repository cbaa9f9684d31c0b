"""The Sentry ingest endpoints over HTTP: auth, encodings, limits, hostile bodies, storage."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import uuid
import zlib
from typing import Any

import brotli
import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spyglass.errors.ingest import MAX_COMPRESSED, MAX_EVENT
from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.models import Project

NOW = dt.datetime(2024, 5, 1, 12, 0, 0)
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def envelope(*events: dict[str, Any], header: dict[str, Any] | None = None) -> bytes:
    out = orjson.dumps(header or {}) + b"\n"
    for event in events:
        payload = orjson.dumps(event)
        out += orjson.dumps({"type": "event", "length": len(payload)}) + b"\n" + payload + b"\n"
    return out


def an_event(message: str = "boom") -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "message": message, "level": "error", "platform": "python"}


def stored(client, project_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    rows = client.app.state.runtime.store.rows(
        "SELECT event_id FROM events WHERE project_id = {p:UInt64}", {"p": project_id})
    return sorted(r["event_id"] for r in rows)


def auth(key: str) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1.0, sentry_key={key}"}


def url(tenant, endpoint: str = "envelope") -> str:  # type: ignore[no-untyped-def]
    return f"/api/{tenant.project_id}/{endpoint}/"


@pytest.fixture
def tenant(tenant_factory):  # type: ignore[no-untyped-def]
    return tenant_factory("alice")


# --- authentication ---------------------------------------------------------------------------


def test_envelope_with_sentry_key_query_is_stored(client, tenant) -> None:  # type: ignore[no-untyped-def]
    event = an_event()
    r = client.post(f"{url(tenant)}?sentry_key={tenant.public_key}", content=envelope(event))
    assert r.status_code == 200, r.text
    assert r.json() == {"id": event["event_id"]}
    assert r.headers["access-control-allow-origin"] == "*"
    assert stored(client, tenant.project_id) == [event["event_id"]]


def test_every_way_of_presenting_the_key_is_accepted(client, tenant) -> None:  # type: ignore[no-untyped-def]
    dsn = f"http://{tenant.public_key}@localhost:8000/{tenant.project_id}"
    ways: dict[str, tuple[dict[str, str], dict[str, Any] | None]] = {
        "X-Sentry-Auth": (auth(tenant.public_key), None),
        "Authorization: Sentry": ({"Authorization": f"Sentry sentry_key={tenant.public_key}"}, None),
        "dsn in the envelope header": ({}, {"dsn": dsn}),
    }
    expected: list[str] = []
    for way, (headers, envelope_header) in ways.items():
        event = an_event(way)
        r = client.post(url(tenant), content=envelope(event, header=envelope_header), headers=headers)
        assert r.status_code == 200, (way, r.text)
        expected.append(event["event_id"])
        assert stored(client, tenant.project_id) == sorted(expected), way


def test_missing_key_is_401_and_wrong_key_403(client, tenant) -> None:  # type: ignore[no-untyped-def]
    r = client.post(url(tenant), content=envelope(an_event()))
    assert r.status_code == 401
    assert r.headers.get("x-sentry-error")
    r = client.post(url(tenant), content=envelope(an_event()), headers={"X-Sentry-Auth": "Sentry sentry_version=7"})
    assert r.status_code == 401
    r = client.post(url(tenant), content=envelope(an_event()), headers=auth("0" * 32))
    assert r.status_code == 403
    r = client.post(f"{url(tenant)}?sentry_key={'f' * 32}", content=envelope(an_event()))
    assert r.status_code == 403
    assert stored(client, tenant.project_id) == []


def test_revoked_key_is_403(client, tenant) -> None:  # type: ignore[no-untyped-def]
    with client.app.state.runtime.db.session() as s:
        key = accounts.active_key(s, s.get(Project, tenant.project_id))
        accounts.revoke_key(s, key)
    r = client.post(url(tenant), content=envelope(an_event()), headers=auth(tenant.public_key))
    assert r.status_code == 403
    r = client.post(f"/api/{tenant.project_id}/store/", content=orjson.dumps(an_event()),
                    headers=auth(tenant.public_key))
    assert r.status_code == 403
    assert stored(client, tenant.project_id) == []


def test_key_of_one_project_is_refused_on_another(client, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    a, b = tenant_factory("alice"), tenant_factory("bob")
    dsn_a = f"http://{a.public_key}@localhost:8000/{a.project_id}"
    attempts = [
        client.post(url(b), content=envelope(an_event()), headers=auth(a.public_key)),
        client.post(f"{url(b)}?sentry_key={a.public_key}", content=envelope(an_event())),
        client.post(url(b), content=envelope(an_event(), header={"dsn": dsn_a})),
        client.post(url(b, "store"), content=orjson.dumps(an_event()), headers=auth(a.public_key)),
    ]
    assert [r.status_code for r in attempts] == [403] * 4
    assert stored(client, a.project_id) == [] and stored(client, b.project_id) == []


def test_project_id_must_be_a_number(client, tenant) -> None:  # type: ignore[no-untyped-def]
    for project in ["abc", "1x", "-1"]:
        r = client.post(f"/api/{project}/envelope/", content=envelope(an_event()),
                        headers=auth(tenant.public_key))
        assert r.status_code == 404, project


# --- content encodings and limits -----------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


ENCODED = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw deflate": _raw_deflate,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "gzip, br": lambda d: brotli.compress(gzip.compress(d)),
}


def test_compressed_envelopes_are_stored(client, tenant) -> None:  # type: ignore[no-untyped-def]
    expected: list[str] = []
    for name, compress in ENCODED.items():
        events = [an_event(f"{name} {i}") for i in range(3)]
        encoding = "deflate" if name == "raw deflate" else name
        r = client.post(url(tenant), content=compress(envelope(*events)),
                        headers={**auth(tenant.public_key), "Content-Encoding": encoding})
        assert r.status_code == 200, (name, r.text)
        expected += [e["event_id"] for e in events]
        assert stored(client, tenant.project_id) == sorted(expected), name


def test_brotli_envelope_over_96_kib_is_stored(client, tenant) -> None:  # type: ignore[no-untyped-def]
    event = an_event()
    blob = bytes(range(256)) * 800  # a 200 kB attachment
    body = envelope(event) + orjson.dumps({"type": "attachment", "length": len(blob)}) + b"\n" + blob
    r = client.post(url(tenant), content=brotli.compress(body),
                    headers={**auth(tenant.public_key), "Content-Encoding": "br"})
    assert r.status_code == 200, r.text


def test_unknown_encoding_is_415_and_corrupt_data_400(client, tenant) -> None:  # type: ignore[no-untyped-def]
    r = client.post(url(tenant), content=envelope(an_event()),
                    headers={**auth(tenant.public_key), "Content-Encoding": "compress"})
    assert r.status_code == 415
    for encoding in ["gzip", "deflate", "br", "zstd"]:
        r = client.post(url(tenant), content=b"this is not compressed at all",
                        headers={**auth(tenant.public_key), "Content-Encoding": encoding})
        assert r.status_code == 400, encoding
    assert stored(client, tenant.project_id) == []


@functools.cache
def zeros_bomb(kind: str) -> bytes:
    """1 GiB of zeros compressed, made chunk by chunk (never 1 GiB in memory)."""
    if kind == "gzip":
        c = zlib.compressobj(9, zlib.DEFLATED, 31, 9, zlib.Z_RLE)
        feed, finish = c.compress, c.flush
    else:
        z = zstandard.ZstdCompressor(level=3).compressobj()
        feed, finish = z.compress, z.flush
    zeros = bytes(1 << 20)
    return b"".join([feed(zeros) for _ in range(1024)] + [finish()])


def test_decompression_bombs_and_oversized_bodies_are_413(client, tenant) -> None:  # type: ignore[no-untyped-def]
    for kind in ["gzip", "zstd"]:
        body = zeros_bomb(kind)
        assert len(body) < MAX_COMPRESSED
        for endpoint in ["envelope", "store"]:
            r = client.post(url(tenant, endpoint), content=body,
                            headers={**auth(tenant.public_key), "Content-Encoding": kind})
            assert r.status_code == 413, (kind, endpoint)
    r = client.post(url(tenant), content=b"x" * (MAX_COMPRESSED + 1), headers=auth(tenant.public_key))
    assert r.status_code == 413
    assert stored(client, tenant.project_id) == []


def test_oversized_event_item_is_skipped_and_its_neighbour_stored(client, tenant) -> None:  # type: ignore[no-untyped-def]
    good = an_event("small")
    huge = an_event("x" * (MAX_EVENT + 10))
    r = client.post(url(tenant), content=envelope(huge, good), headers=auth(tenant.public_key))
    assert r.status_code == 200, r.text
    assert stored(client, tenant.project_id) == [good["event_id"]]


def test_bad_items_are_skipped_and_good_ones_stored(client, tenant) -> None:  # type: ignore[no-untyped-def]
    good = an_event()
    body = (
        b"{}\n"
        b'{"type":"event"}\n{not json\n'
        b'{"type":"event"}\n[1,2,3]\n'
        b'{"type":"session"}\n{"sid":"abc"}\n'
        + envelope(good).split(b"\n", 1)[1]
        + b'{"type":"event","length":9999}\ntruncated'
    )
    r = client.post(url(tenant), content=body, headers=auth(tenant.public_key))
    assert r.status_code == 200, r.text
    assert stored(client, tenant.project_id) == [good["event_id"]]


def test_event_id_of_the_envelope_header(client, tenant) -> None:  # type: ignore[no-untyped-def]
    # Without events, the reply still names the envelope's event_id; nothing is stored.
    eid = uuid.uuid4().hex
    body = orjson.dumps({"event_id": eid}) + b'\n{"type":"session"}\n{"sid":"x"}\n'
    r = client.post(url(tenant), content=body, headers=auth(tenant.public_key))
    assert r.status_code == 200 and r.json() == {"id": eid}
    assert stored(client, tenant.project_id) == []
    # An event without its own event_id takes the envelope's.
    eid = uuid.uuid4().hex
    r = client.post(url(tenant), content=envelope({"message": "no id"}, header={"event_id": eid}),
                    headers=auth(tenant.public_key))
    assert r.status_code == 200 and r.json() == {"id": eid}
    assert stored(client, tenant.project_id) == [eid]


def test_unreadable_envelope_header_is_400(client, tenant) -> None:  # type: ignore[no-untyped-def]
    r = client.post(url(tenant), content=b"not an envelope", headers=auth(tenant.public_key))
    assert r.status_code == 400
    assert r.headers.get("x-sentry-error")
    r = client.post(url(tenant), content=b"not an envelope\n" + envelope(an_event()),
                    headers=auth(tenant.public_key))
    assert r.status_code == 400
    assert stored(client, tenant.project_id) == []


def test_many_gzip_members_do_not_give_500(client, tenant) -> None:  # type: ignore[no-untyped-def]
    body = gzip.compress(b"{}\n") * 3000
    r = client.post(url(tenant), content=body, headers={**auth(tenant.public_key), "Content-Encoding": "gzip"})
    assert r.status_code < 500


def test_truncated_zstd_body_is_400(client, tenant) -> None:  # type: ignore[no-untyped-def]
    body = zstandard.ZstdCompressor().compress(envelope(an_event()))
    r = client.post(url(tenant), content=body[:-5],
                    headers={**auth(tenant.public_key), "Content-Encoding": "zstd"})
    assert r.status_code == 400


# --- hostile bodies never give a 5xx --------------------------------------------------------

encodings = st.sampled_from(["", "gzip", "deflate", "br", "zstd", "identity", "gzip, br", "bogus"])


@FUZZ
@given(body=st.binary(max_size=2048), encoding=encodings,
       endpoint=st.sampled_from(["envelope", "store"]))
def test_garbage_bodies_never_give_5xx(client, tenant, body: bytes, encoding: str, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    headers = {**auth(tenant.public_key), "Content-Encoding": encoding} if encoding else auth(tenant.public_key)
    r = client.post(url(tenant, endpoint), content=body, headers=headers)
    assert r.status_code < 500, r.text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
EVENT_KEYS = ["event_id", "timestamp", "level", "platform", "release", "environment", "message",
              "logentry", "exception", "transaction", "user", "contexts", "tags", "extra"]
hostile_events = st.dictionaries(st.sampled_from(EVENT_KEYS), json_values, max_size=8)


@FUZZ
@given(events=st.lists(hostile_events, min_size=1, max_size=3),
       header=st.dictionaries(st.sampled_from(["event_id", "dsn", "sent_at"]), json_values, max_size=2))
def test_hostile_events_never_give_5xx(client, tenant, events: list[dict[str, Any]], header: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    header.pop("dsn", None)  # a foreign DSN would only test auth again
    r = client.post(url(tenant), content=envelope(*events, header=header), headers=auth(tenant.public_key))
    assert r.status_code == 200, r.text
    r = client.post(url(tenant, "store"), content=orjson.dumps(events[0]), headers=auth(tenant.public_key))
    assert r.status_code == 200, r.text


# --- CORS and the legacy /store/ endpoint ---------------------------------------------------


def test_cors_preflight_and_error_replies(client, tenant) -> None:  # type: ignore[no-untyped-def]
    for endpoint in ["envelope", "store"]:
        r = client.options(url(tenant, endpoint), headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-sentry-auth, content-type",
        })
        assert r.status_code in (200, 204)
        assert r.headers["access-control-allow-origin"] in ("*", "https://shop.example")
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "x-sentry-auth" in r.headers["access-control-allow-headers"].lower()
    # A browser must be able to read refusals too.
    r = client.post(url(tenant), content=envelope(an_event()), headers={"Origin": "https://shop.example"})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == "*"


def test_store_endpoint_stores_an_event(client, tenant) -> None:  # type: ignore[no-untyped-def]
    event = {**an_event(), "exception": {"values": [{"type": "ValueError", "value": "bad"}]}}
    r = client.post(url(tenant, "store"), content=gzip.compress(orjson.dumps(event)),
                    headers={**auth(tenant.public_key), "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": event["event_id"]}
    rows = client.app.state.runtime.store.rows(
        "SELECT event_id, title, exception_type FROM events WHERE project_id = {p:UInt64}",
        {"p": tenant.project_id})
    assert rows == [{"event_id": event["event_id"], "title": "ValueError: bad", "exception_type": "ValueError"}]


def test_store_endpoint_refusals(client, tenant) -> None:  # type: ignore[no-untyped-def]
    event = an_event()
    r = client.post(f"{url(tenant, 'store')}?sentry_key={tenant.public_key}", content=orjson.dumps(event))
    assert r.status_code == 200
    for body in [b"", b"not json", b"[1,2]", b'"event"', b"null"]:
        r = client.post(url(tenant, "store"), content=body, headers=auth(tenant.public_key))
        assert r.status_code == 400, body
    r = client.post(url(tenant, "store"), content=orjson.dumps(an_event("x" * (MAX_EVENT + 10))),
                    headers=auth(tenant.public_key))
    assert r.status_code == 413
    r = client.post(url(tenant, "store"), content=orjson.dumps(an_event()))
    assert r.status_code == 401
    assert stored(client, tenant.project_id) == [event["event_id"]]


# --- the stored row of an event ---------------------------------------------------------


@pytest.fixture
def event_row(client, tenant_factory):  # type: ignore[no-untyped-def]
    """Process one event as the envelope endpoint does and return its events-table row."""
    from spyglass.errors.envelope import Envelope, Item

    processor = client.app.state.errors.processor
    pid = tenant_factory("rows").project_id

    def row(event: dict[str, Any]) -> dict[str, Any]:
        out = processor.process(pid, Envelope({}, [Item({"type": "event"}, orjson.dumps(event))]), NOW)
        assert not out.invalid, out.invalid
        return {**out.rows["events"][0], "project": pid}

    return row


def test_event_row_hot_fields(event_row) -> None:
    event = {
        "event_id": "9EC79C33-EC99-42AB-8353-589FCB2E04DC",
        "timestamp": "2024-05-01T10:00:00.5+02:00",
        "level": "warning", "platform": "javascript", "release": "web@1.2.3",
        "environment": "production", "transaction": "/checkout",
        "exception": {"values": [{"type": "KeyError", "value": "a"},
                                 {"type": "TypeError", "value": "x is undefined"}]},
        "user": {"email": "u@example.com"},
        "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}},
        "tags": [["browser", "Firefox"], ["os", "Linux"]],
    }
    row = event_row(event)
    assert row["project_id"] == row["project"]
    assert row["event_id"] == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert row["timestamp"] == dt.datetime(2024, 5, 1, 8, 0, 0, 500000)
    assert row["received_at"] == NOW
    assert row["title"].startswith("TypeError: x is undefined")  # the last exception is the one raised
    assert (row["exception_type"], row["exception_value"]) == ("TypeError", "x is undefined")
    assert (row["level"], row["platform"], row["release"]) == ("warning", "javascript", "web@1.2.3")
    assert row["environment"] == "production" and row["transaction"] == "/checkout"
    assert row["user_key"] == "email:u@example.com"
    assert row["trace_id"] == "a" * 32
    assert row["issue_id"] > 0 and len(row["group_hash"]) == 32
    tags = row["tags"]
    assert tags["browser"] == "Firefox" and tags["os"] == "Linux"
    assert tags["release"] == "web@1.2.3" and tags["user"] == "email:u@example.com"
    stored = orjson.loads(row["data"])
    assert stored["exception"] == event["exception"] and stored["issue_id"] == row["issue_id"]


def test_event_row_message_forms_and_defaults(event_row) -> None:
    assert event_row({"message": "plain"})["title"] == "plain"
    assert event_row({"logentry": {"formatted": "fmt", "message": "m %s"}})["title"] == "fmt"
    assert event_row({"message": {"message": "raw %s"}})["title"] == "raw %s"
    row = event_row({})
    assert row["title"]
    assert (row["level"], row["platform"], row["timestamp"]) == ("error", "other", NOW)
    assert len(row["event_id"]) == 32
    assert event_row({"exception": [{"type": "E", "value": "v"}]})["title"] == "E: v"
    assert event_row({"tags": {"a": "b", "n": 1}})["tags"]["n"] == "1"
    assert event_row({"timestamp": 1714564800})["timestamp"] == dt.datetime(2024, 5, 1, 12, 0)


@pytest.mark.parametrize("ts", [1e300, -1e300, "2024-13-45", "yesterday", "0001-01-01T00:00:00+01:00",
                                "9999-12-31T23:59:59-01:00", [], {}, True])
def test_event_row_bad_timestamps_fall_back_to_received(event_row, ts: Any) -> None:
    assert event_row({"timestamp": ts})["timestamp"] == NOW
