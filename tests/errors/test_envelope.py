"""Sentry envelope parsing (https://develop.sentry.dev/sdk/data-model/envelopes/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.errors.envelope import EnvelopeError, parse_envelope

EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"


def parse(body: bytes) -> list[tuple[dict[str, Any], bytes]]:
    return [(item.headers, item.payload) for item in parse_envelope(body).items]


# --- the examples of the spec ------------------------------------------------------------


def test_spec_two_items_with_length_last_newline_omitted() -> None:
    body = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc",'
        b'"dsn":"https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42"}\n'
        b'{"type":"attachment","length":10,"content_type":"text/plain","filename":"hello.txt"}\n'
        b"\xef\xbb\xbfHello\r\n\n"
        b'{"type":"event","length":41,"content_type":"application/json","filename":"application.log"}\n'
        b'{"message":"hello world","level":"error"}'
    )
    envelope = parse_envelope(body)
    assert envelope.headers == {
        "event_id": EVENT_ID,
        "dsn": "https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42",
    }
    assert [i.type for i in envelope.items] == ["attachment", "event"]
    assert envelope.items[0].payload == b"\xef\xbb\xbfHello\r\n"
    assert envelope.items[0].headers["filename"] == "hello.txt"
    assert envelope.items[1].json() == {"message": "hello world", "level": "error"}
    assert envelope.errors == []


def test_spec_two_empty_attachments() -> None:
    body = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
        b'{"type":"attachment","length":0}\n'
        b"\n"
        b'{"type":"attachment","length":0}\n'
        b"\n"
    )
    assert parse(body) == [({"type": "attachment", "length": 0}, b"")] * 2


def test_spec_implicit_length_terminated_by_newline() -> None:
    body = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"attachment"}\nhelloworld\n'
    assert parse(body) == [({"type": "attachment"}, b"helloworld")]


def test_spec_implicit_length_terminated_by_eof() -> None:
    body = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"attachment"}\nhelloworld'
    assert parse(body) == [({"type": "attachment"}, b"helloworld")]


def test_spec_empty_headers_implicit_length_eof() -> None:
    body = (
        b"{}\n"
        b'{"type":"session"}\n'
        b'{"started": "2020-02-07T14:16:00Z","attrs":{"release":"sentry-test@1.0.0"}}'
    )
    envelope = parse_envelope(body)
    assert envelope.headers == {}
    assert envelope.items[0].type == "session"
    assert envelope.items[0].json()["attrs"] == {"release": "sentry-test@1.0.0"}


@pytest.mark.parametrize("body", [b"{}", b"{}\n", b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'])
def test_envelope_without_items(body: bytes) -> None:
    envelope = parse_envelope(body)
    assert envelope.items == [] and envelope.errors == []


# --- payloads and framing ------------------------------------------------------------------


def test_binary_attachment_with_newlines_and_nul_bytes() -> None:
    blob = b"\n\n\x00\xff\n{\"type\":\"event\"}\n\r\n" + bytes(range(256))
    body = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
        + orjson.dumps({"type": "attachment", "length": len(blob), "filename": "core.bin"})
        + b"\n" + blob + b"\n"
        b'{"type":"event","length":2}\n{}\n'
    )
    items = parse(body)
    assert items[0][1] == blob
    assert items[1] == ({"type": "event", "length": 2}, b"{}")


def test_payload_ending_in_newline_with_length() -> None:
    body = b'{}\n{"type":"attachment","length":3}\nab\n\n{"type":"event","length":2}\n{}'
    assert [p for _, p in parse(body)] == [b"ab\n", b"{}"]


def test_length_payload_without_the_newline_after_it() -> None:
    # The newline after a payload with a length is optional at the end of the envelope.
    assert parse(b'{}\n{"type":"attachment","length":3}\nabc') == [
        ({"type": "attachment", "length": 3}, b"abc")
    ]


def test_items_with_and_without_length_mixed() -> None:
    body = (
        b"{}\n"
        b'{"type":"event"}\n{"message":"one"}\n'
        b'{"type":"attachment","length":5}\na\nb\nc\n'
        b'{"type":"session"}\n{"sid":"x"}\n'
        b'{"type":"client_report","length":2}\n{}'
    )
    assert [(h["type"], p) for h, p in parse(body)] == [
        ("event", b'{"message":"one"}'),
        ("attachment", b"a\nb\nc"),
        ("session", b'{"sid":"x"}'),
        ("client_report", b"{}"),
    ]


def test_empty_implicit_payloads() -> None:
    body = b'{}\n{"type":"a"}\n\n{"type":"b"}\n\n{"type":"c"}\n'
    assert parse(body) == [({"type": "a"}, b""), ({"type": "b"}, b""), ({"type": "c"}, b"")]


def test_header_only_item_at_the_end() -> None:
    assert parse(b'{}\n{"type":"a"}') == [({"type": "a"}, b"")]


def test_item_type_is_a_string_or_empty() -> None:
    envelope = parse_envelope(b'{}\n{"type":7}\n{}\n{}\nnull\n')
    assert [i.type for i in envelope.items] == ["", ""]


def test_many_items() -> None:
    body = b"{}\n" + b"".join(
        orjson.dumps({"type": "event", "length": len(p)}) + b"\n" + p + b"\n"
        for p in (b'{"n":%d}' % i for i in range(1000))
    )
    items = parse_envelope(body).items
    assert len(items) == 1000 and items[-1].json() == {"n": 999}


# --- bad items keep the good ones before them --------------------------------------------------

GOOD = b'{"type":"event","length":18}\n{"message":"good"}\n'


@pytest.mark.parametrize("bad_header", [
    b'{"type":"event",',          # not JSON
    b"not json at all",
    b"[1,2,3]",                   # JSON, not an object
    b'"string"',
    b"\xff\xfe\xfd",              # not UTF-8
    b'{"type":"event","length":-1}',
    b'{"type":"event","length":"17"}',
    b'{"type":"event","length":1.5}',
    b'{"type":"event","length":true}',
    b'{"type":"event","length":99999999999}',   # past the end
])
def test_bad_item_header_in_the_middle_keeps_earlier_items(bad_header: bytes) -> None:
    body = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n' + GOOD + GOOD + bad_header + b"\n" + GOOD
    envelope = parse_envelope(body)
    assert [i.json() for i in envelope.items[:2]] == [{"message": "good"}] * 2
    assert len(envelope.items) == 2
    assert len(envelope.errors) == 1 and "item 3" in envelope.errors[0]


def test_truncated_length_keeps_earlier_items() -> None:
    body = b"{}\n" + GOOD + b'{"type":"attachment","length":100}\nonly a little'
    envelope = parse_envelope(body)
    assert [i.type for i in envelope.items] == ["event"]
    assert envelope.errors and "truncated" in envelope.errors[0]


def test_length_one_past_the_end_is_truncated() -> None:
    envelope = parse_envelope(b'{}\n{"type":"attachment","length":4}\nabc')
    assert envelope.items == [] and envelope.errors


def test_bad_json_payload_is_the_callers_business() -> None:
    # Framing is intact, so the item is returned; its payload fails only when read as JSON.
    envelope = parse_envelope(b'{}\n{"type":"event"}\n{not json\n' + GOOD)
    assert [i.type for i in envelope.items] == ["event", "event"]
    with pytest.raises(orjson.JSONDecodeError):
        envelope.items[0].json()
    assert envelope.items[1].json() == {"message": "good"}


def test_blank_lines_between_items_are_tolerated() -> None:
    body = b"{}\n" + GOOD + b"\n\n" + GOOD
    assert len(parse_envelope(body).items) == 2


# --- an unreadable envelope header is the only EnvelopeError ------------------------------------


@pytest.mark.parametrize("body", [
    b"not json\n" + GOOD,
    b"[]\n" + GOOD,
    b"null\n",
    b"42",
    b'"x"\n',
    b'{"event_id":\n' + GOOD,
    b"\xff\xff\n" + GOOD,
    b'{"a":1}{"b":2}\n',
    b"[" * 5000 + b"]" * 5000,
])
def test_unreadable_envelope_header_raises(body: bytes) -> None:
    with pytest.raises(EnvelopeError):
        parse_envelope(body)


def test_envelope_error_is_a_value_error() -> None:
    assert issubclass(EnvelopeError, ValueError)


# --- hypothesis ----------------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=5,
)
item_types = st.sampled_from(["event", "transaction", "attachment", "session", "sessions",
                              "client_report", "replay_event", "replay_recording", "check_in",
                              "user_report", "profile", "statsd", "log", "unknown_thing"])


@dataclass
class GenItem:
    headers: dict[str, Any]
    payload: bytes
    explicit: bool


@st.composite
def gen_items(draw: st.DrawFn, explicit: bool | None = None) -> GenItem:
    extra = draw(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in ("length", "type")),
                                 json_values, max_size=3))
    headers = {"type": draw(item_types), **extra}
    use_length = draw(st.booleans()) if explicit is None else explicit
    if use_length:
        payload = draw(st.binary(max_size=200))
    else:
        payload = draw(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")))
    return GenItem(headers, payload, use_length)


envelope_headers = st.fixed_dictionaries(
    {}, optional={"event_id": st.uuids().map(lambda u: u.hex),
                  "dsn": st.just("https://abc@spyglass.example/1"),
                  "sent_at": st.just("2024-01-01T00:00:00Z"),
                  "sdk": st.fixed_dictionaries({"name": st.text(max_size=10)})})


def serialize(headers: dict[str, Any], items: list[GenItem], trailing_newline: bool) -> tuple[bytes, list[int]]:
    """The envelope's bytes and, per item, the offset where its payload ends."""
    out = bytearray(orjson.dumps(headers) + b"\n")
    ends = []
    for n, item in enumerate(items):
        h = dict(item.headers, length=len(item.payload)) if item.explicit else item.headers
        out += orjson.dumps(h) + b"\n" + item.payload
        ends.append(len(out))
        if n < len(items) - 1 or trailing_newline:
            out += b"\n"
    return bytes(out), ends


def expected(items: list[GenItem]) -> list[tuple[dict[str, Any], bytes]]:
    return [(dict(i.headers, length=len(i.payload)) if i.explicit else i.headers, i.payload)
            for i in items]


@settings(max_examples=150, deadline=None)
@given(headers=envelope_headers, items=st.lists(gen_items(), max_size=6), trailing=st.booleans())
def test_generated_envelopes_round_trip(headers: dict[str, Any], items: list[GenItem], trailing: bool) -> None:
    body, _ = serialize(headers, items, trailing)
    envelope = parse_envelope(body)
    assert envelope.headers == headers
    assert [(i.headers, i.payload) for i in envelope.items] == expected(items)
    assert envelope.errors == []


@settings(max_examples=150, deadline=None)
@given(headers=envelope_headers, items=st.lists(gen_items(explicit=True), min_size=1, max_size=6),
       data=st.data())
def test_truncated_envelopes_keep_every_complete_item(headers: dict[str, Any], items: list[GenItem],
                                                     data: st.DataObject) -> None:
    body, ends = serialize(headers, items, trailing_newline=True)
    cut = data.draw(st.integers(0, len(body)))
    header_line = body.index(b"\n")
    try:
        envelope = parse_envelope(body[:cut])
    except EnvelopeError:
        assert 0 < cut <= header_line  # only a cut inside the envelope header is fatal
        return
    parsed = [(i.headers, i.payload) for i in envelope.items]
    complete = sum(1 for end in ends if end <= cut)
    assert len(parsed) >= complete, "an item that arrived whole was dropped"
    assert parsed == expected(items)[: len(parsed)], "an item was altered"


@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=1024))
def test_random_bytes_only_raise_envelope_error(body: bytes) -> None:
    try:
        envelope = parse_envelope(body)
    except EnvelopeError:
        return
    for item in envelope.items:
        assert isinstance(item.headers, dict) and isinstance(item.payload, bytes)
        assert isinstance(item.type, str)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.one_of(
    st.sampled_from([b"{}", b'{"type":"event"}', b'{"type":"attachment","length":3}',
                     b'{"length":0}', b'{"length":-2}', b'{"length":1e400}', b'{"length":null}',
                     b'{"length":18446744073709551616}', b"[", b"", b"\r", b"{}}"]),
    st.binary(max_size=40)), max_size=12))
def test_line_soup_only_raises_envelope_error(lines: list[bytes]) -> None:
    try:
        parse_envelope(b"\n".join(lines))
    except EnvelopeError:
        pass


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> bytes:
    headers = draw(envelope_headers)
    items = draw(st.lists(gen_items(), min_size=1, max_size=5))
    body = bytearray(serialize(headers, items, draw(st.booleans()))[0])
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, max(len(body) - 1, 0)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "newline"]))
        if op == "flip" and body:
            body[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            body.insert(i, draw(st.integers(0, 255)))
        elif op == "newline":
            body.insert(i, 0x0A)
        elif body:
            del body[i]
    return bytes(body)


@settings(max_examples=200, deadline=None)
@given(body=mutated_envelopes())
def test_mutated_envelopes_only_raise_envelope_error(body: bytes) -> None:
    try:
        envelope = parse_envelope(body)
    except EnvelopeError:
        return
    for item in envelope.items:
        assert isinstance(item.headers, dict) and isinstance(item.payload, bytes)
