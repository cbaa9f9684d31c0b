"""Normalization and scrubbing of events before they are stored."""

from __future__ import annotations

import copy
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.errors.normalize import (
    MAX_DEPTH,
    MAX_STRING,
    normalize_event,
    parse_timestamp,
    trim_in_place,
)
from spyglass.errors.scrub import (
    FILTERED,
    ScrubRules,
    _scrub_in_place,
    _values_need_scrubbing,
    scrub_event,
    scrub_string,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, 0)


def test_timestamps_in_every_form():
    assert parse_timestamp(1_700_000_000.5) == dt.datetime(2023, 11, 14, 22, 13, 20, 500000)
    assert parse_timestamp("1700000000") == dt.datetime(2023, 11, 14, 22, 13, 20)
    assert parse_timestamp("2026-11-27T11:00:00+01:00") == dt.datetime(2026, 11, 27, 10, 0)
    assert parse_timestamp("2026-11-27T10:00:00Z") == dt.datetime(2026, 11, 27, 10, 0)
    assert parse_timestamp("yesterday") is None and parse_timestamp(True) is None


def test_normalize_shapes():
    e = normalize_event({
        "event_id": "9ec79c33-ec99-42ab-8353-589fcb2e04dc",
        "timestamp": "2099-01-01T00:00:00Z",  # a client clock far in the future
        "level": "warn",
        "tags": {"a": 1, "b": None},
        "exception": [{"type": "ValueError", "value": "bad"}],
        "breadcrumbs": [{"message": str(i)} for i in range(150)],
        "logentry": {"message": "user %s failed", "params": ["bob"]},
    }, NOW)
    assert e["event_id"] == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert e["timestamp"] == "2026-11-27T12:00:00Z"
    assert e["level"] == "warning"
    assert e["tags"] == [["a", "1"], ["b", ""]]
    assert e["exception"]["values"][0]["type"] == "ValueError"
    assert len(e["breadcrumbs"]["values"]) == 100 and e["breadcrumbs"]["values"][-1]["message"] == "149"
    assert e["message"] == "user bob failed"
    assert len(normalize_event({"event_id": "nope"}, NOW)["event_id"]) == 32


def test_big_strings_and_deep_nesting_are_capped():
    deep: dict = {}
    cur = deep
    for _ in range(50):
        cur["x"] = {}
        cur = cur["x"]
    e = normalize_event({"extra": {"blob": "x" * 100_000, "deep": deep}}, NOW)
    assert len(e["extra"]["blob"]) == 8192
    assert "[…]" in str(e["extra"]["deep"])


def test_default_scrubbing():
    event = normalize_event({
        "request": {
            "headers": [["Authorization", "Bearer abc.def.ghi"], ["Accept", "text/html"]],
            "cookies": "session=abc123",
            "data": {"password": "hunter22", "card": "4111 1111 1111 1111", "order": "1234 5678 9012 3456"},
            "url": "https://app.example.com/cb?x=1",
        },
        "extra": {"db": "postgres://admin:s3cret@db.internal/app", "api_key": "k-123",
                  "note": "used token abcdefghijklmnop"},
        "user": {"id": "42", "ip_address": "203.0.113.9"},
    }, NOW)
    out = scrub_event(event, ScrubRules())
    r = out["request"]
    assert r["headers"] == [["Authorization", FILTERED], ["Accept", "text/html"]]
    assert r["cookies"] == FILTERED
    assert r["data"]["password"] == FILTERED
    assert r["data"]["card"] == FILTERED
    assert r["data"]["order"] == "1234 5678 9012 3456"  # fails Luhn: not a card number
    assert out["extra"]["db"] == f"postgres://admin:{FILTERED}@db.internal/app"
    assert out["extra"]["api_key"] == FILTERED
    assert out["extra"]["note"] == f"used token {FILTERED}"
    assert out["user"]["ip_address"] == "203.0.113.9"


def test_project_rules():
    rules = ScrubRules.for_project("customer_ref\n", "session_kind\n", scrub_ip=True)
    out = scrub_event(normalize_event({
        "extra": {"customer_ref": "C-1", "session_kind": "web", "session": "abc"},
        "user": {"ip_address": "203.0.113.9"},
    }, NOW), rules)
    assert out["extra"] == {"customer_ref": FILTERED, "session_kind": "web", "session": FILTERED}
    assert out["user"]["ip_address"] is None


#: Strings around MAX_STRING, cheap to generate (hypothesis's text() of that size is slow
#: enough to fail its health check on a busy machine).
long_strings = st.builds(lambda n, c: c * n, st.integers(8185, 8200), st.sampled_from("xé€4 "))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(
    ["event_id", "timestamp", "level", "tags", "exception", "breadcrumbs", "message", "logentry",
     "user", "request", "contexts", "fingerprint", "release", "threads", "extra"]), json_values))
def test_any_json_object_normalizes_and_scrubs(event):
    out = scrub_event(normalize_event(event, NOW), ScrubRules())
    assert len(out["event_id"]) == 32 and out["level"] in {"fatal", "error", "warning", "info", "debug"}


def _trimmed(value, depth=0):
    """The specification of trim_in_place, as a plain recursive copy."""
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[: MAX_STRING - 1] + "…"
    if depth >= MAX_DEPTH:
        return "[…]" if isinstance(value, (dict, list)) else value
    if isinstance(value, dict):
        return {k[:256]: _trimmed(v, depth + 1) for k, v in list(value.items())[:500]}
    if isinstance(value, list):
        return [_trimmed(v, depth + 1) for v in value[:500]]
    return value


def _nested(depth: int):
    return {"d": _nested(depth - 1)} if depth else [1, "x"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=300), json_values | long_strings,
                       max_size=6))
def test_trim_in_place_is_the_recursive_trim(event):
    event["deep"] = _nested(15)
    event["wide"] = {f"k{i}": i for i in range(600)}
    event["long"] = list(range(700))
    expected = _trimmed(copy.deepcopy(event))
    assert trim_in_place(event) == expected


def test_digits_of_floats_are_not_card_numbers():
    # sentry-sdk sends local variables as reprs: the digits of a float must not make every
    # string of the event go through the slow patterns, nor be filtered.
    assert not _values_need_scrubbing(b'{"elapsed":"5.278000116959447e-06","n":"4111111111111111x"}')
    assert _values_need_scrubbing(b'{"note":"card 4111 1111 1111 1111 on file"}')
    assert _values_need_scrubbing(b'{"note":"x.4111111111111111"}')
    event = normalize_event({"extra": {"elapsed": "5.278000116959447e-06",
                                       "card": "paid with 4111111111111111."}}, NOW)
    out = scrub_event(event, ScrubRules())
    assert out["extra"] == {"elapsed": "5.278000116959447e-06", "card": f"paid with {FILTERED}."}


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["4111", "1111", "0", "7", " ", "-", "--", "e", "x", ".", "_",
                                 '"', "5.27", "é", "ß", "٣", "€", "4111111111111111",
                                 "378282246310005", "\\n", "\\u001f"]),
                max_size=40).map("".join))
def test_card_prefilter_agrees_with_the_card_pattern(text):
    from spyglass.errors.scrub import CARD, _card_digits, _may_hold_card

    # The text is serialized JSON: CARD runs on the strings it stands for, whose "\\n" is a
    # newline ("\\n4111 378282246310005" holds no card: CARD takes all 19 digits, which fail
    # Luhn, where the escaped text would give it "378282246310005" after the letter "n").
    decoded = text.replace("\\n", "\n").replace("\\u001f", "\x1f")
    expected = any(_card_digits(m.group()) for m in CARD.finditer(decoded))
    # Never a miss; exact on ASCII text without escapes (elsewhere it may say yes more
    # often). A non-ASCII letter before the digits once made it miss ("é4111 3782...").
    found = _may_hold_card(text.encode())
    assert found == expected or (not expected and (not text.isascii() or "\\" in text))


def test_trim_cuts_a_long_string_next_to_containers_it_keeps():
    event = {"a": ["x" * 9000, {"b": 1}, [2]], "c": "y" * 9000, "d": {"e": 3}}
    assert trim_in_place(copy.deepcopy(event)) == _trimmed(event)
    assert trim_in_place(event)["a"][1:] == [{"b": 1}, [2]] and event["d"] == {"e": 3}


def _scrubbed(value, rules, values):
    """The specification of _scrub_in_place, as a plain recursive copy."""
    if isinstance(value, dict):
        return {k: FILTERED if type(k) is str and v is not None and v != "" and rules.key_is_sensitive(k)
                else _scrubbed(v, rules, values) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) == 2 and type(value[0]) is str and rules.key_is_sensitive(value[0]):
            return [value[0], FILTERED]
        return [_scrubbed(v, rules, values) for v in value]
    if isinstance(value, str) and values:
        return scrub_string(value)
    return value


scrub_keys = st.sampled_from(["password", "Authorization", "api_key", "session", "session_kind",
                              "customer_ref", "type", "name", "value", "headers"]) | st.text(max_size=6)
scrub_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | scrub_keys
    | st.sampled_from(["", "Bearer abcdefghijkl", "paid with 4111 1111 1111 1111", "postgres://u:pw@db/x"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(scrub_keys, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(scrub_trees, min_size=1, max_size=3))
def test_scrub_in_place_is_the_recursive_scrub(events):
    # Several events through the same rules: later ones meet keys whose verdicts are cached
    # (dicts known safe skip the per-key checks), and must come out the same.
    for values in (False, True):
        rules = ScrubRules.for_project("customer_ref\n", "session_kind\n")
        reference = ScrubRules.for_project("customer_ref\n", "session_kind\n")
        for event in events + events:
            root = {"extra": copy.deepcopy(event)}
            _scrub_in_place(root, rules, values)
            assert root == _scrubbed({"extra": event}, reference, values)


def test_credentials_behind_json_escapes_are_scrubbed():
    # In the serialized event a newline is "\n" and a quote is '\"': the whole-event
    # prefilter must still send these strings through the patterns.
    event = normalize_event({"extra": {
        "header": "Token\nabcdefghijklmnop",
        "dsn": 'postgres://app:pa"ss@db.internal/app',
    }}, NOW)
    out = scrub_event(event, ScrubRules())
    assert out["extra"]["header"] == f"Token {FILTERED}"
    assert out["extra"]["dsn"] == f"postgres://app:{FILTERED}@db.internal/app"


def test_cards_after_escaped_characters_are_scrubbed():
    # "\n4111..." in the serialized event: the "n" is a newline, not a letter glued to the
    # digits; a control character is written as a \u00XX escape whose hex digits touch them.
    event = normalize_event({"extra": {
        "log": "Payment failed:\n4111111111111111",
        "tabbed": "card\t4111 1111 1111 1111",
        "control": "\x1f4111111111111111",
    }}, NOW)
    out = scrub_event(event, ScrubRules())
    assert out["extra"] == {"log": f"Payment failed:\n{FILTERED}",
                            "tabbed": f"card\t{FILTERED}", "control": f"\x1f{FILTERED}"}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["password", "extra", "tags", "x" * 300, "headers",
                                        "token", "deep", "note"]),
                       json_values | long_strings, max_size=6),
       st.booleans())
def test_one_walk_trims_and_scrubs_like_two(event, values):
    from spyglass.errors.scrub import _scrub_in_place, _trim_and_scrub_in_place

    event["deep"] = _nested(14)
    event["wide"] = {f"k{i}": "card 4111 1111 1111 1111" for i in range(520)}
    event["pairs"] = [["Authorization", "Bearer abcdefghij"], ["x" * 9000, "kept"]]
    rules = ScrubRules.for_project("note")
    expected = copy.deepcopy(event)
    _scrub_in_place(trim_in_place(expected), rules, values)
    _trim_and_scrub_in_place(event, rules, values)
    assert event == expected
