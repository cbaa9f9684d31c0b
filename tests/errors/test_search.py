"""The issue search syntax: parsing and the SQL it becomes (run on the configured stack)."""

from __future__ import annotations

import datetime as dt

import pytest

from spyglass.errors import search

NOW = dt.datetime(2025, 5, 10, 12, 0, 0)


def test_statuses_substatuses_and_all():
    assert search.parse("is:unresolved").statuses == {"unresolved"}
    assert search.parse("is:resolved is:ignored").statuses == {"resolved", "ignored"}
    assert search.parse("is:archived").statuses == {"ignored"}
    assert search.parse("is:all").statuses is None
    assert search.parse("").statuses is None
    s = search.parse("is:unresolved is:regressed")
    assert s.statuses == {"unresolved"} and s.substatuses == {"regressed"}
    assert search.parse("is:bogus").errors


def test_terms_quotes_lists_negation_and_text():
    s = search.parse('level:error browser:"Chrome 120" !environment:staging '
                     'release:[1.0, "2.0 beta"] card declined "out of stock"', NOW)
    assert [(t.key, t.values, t.negated) for t in s.terms] == [
        ("level", ["error"], False), ("browser", ["Chrome 120"], False),
        ("environment", ["staging"], True), ("release", ["1.0", "2.0 beta"], False)]
    assert s.text == ["card", "declined", "out of stock"]
    assert s.errors == []


def test_relative_and_absolute_times_and_counts():
    s = search.parse("firstSeen:-24h lastSeen:+7d age:>2025-05-01 timesSeen:>10", NOW)
    assert s.first_seen == [(">=", NOW - dt.timedelta(hours=24)), (">", dt.datetime(2025, 5, 1))]
    assert s.last_seen == [("<", NOW - dt.timedelta(days=7))]
    assert s.times_seen == [(">", 10)]
    assert search.parse("firstSeen:yesterday", NOW).errors
    assert search.parse("timesSeen:many", NOW).errors


def test_short_ids_only_with_the_project_prefix():
    assert search.parse("SHOP-12", short_prefix="SHOP").short_ids == {12}
    assert search.parse("HTTP-500", short_prefix="SHOP").text == ["HTTP-500"]
    assert search.parse("issue:SHOP-3").short_ids == {3}


def test_with_key_and_value_of_rebuild_queries():
    q = 'is:unresolved level:error browser:"Chrome 120"'
    assert search.with_key(q, "is", "resolved") == 'is:resolved level:error browser:"Chrome 120"'
    assert search.with_key(q, "level", None) == 'is:unresolved browser:"Chrome 120"'
    assert search.value_of(q, "browser") == "Chrome 120"
    assert search.value_of(q, "release") is None
    assert search.quote("a b") == '"a b"' and search.quote("x") == "x"


@pytest.fixture
def store(runtime):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from spyglass.errors.schema import EVENTS

    rows = [
        {"tags": {"browser": "Chrome 120", "url": "/cart"}, "level": "error", "release": "1.0",
         "environment": "prod", "user_key": "email:ann@example.com", "title": "ValueError: 50% off",
         "culprit": "shop.cart", "exception_value": "50% off"},
        {"tags": {"browser": "Firefox 115"}, "level": "warning", "release": "2.0",
         "environment": "staging", "user_key": "id:42", "title": "KeyError: 'sku'",
         "culprit": "shop.stock", "exception_value": "'sku'"},
        {"tags": {}, "level": "error", "release": "2.1", "environment": "prod", "user_key": "",
         "title": "Timeout talking to db_main", "culprit": "db", "exception_value": ""},
    ]
    full = []
    for i, r in enumerate(rows):
        full.append({"project_id": 1, "timestamp": NOW, "received_at": NOW,
                     "event_id": f"{i:032x}", "issue_id": i + 1, "group_hash": "h",
                     "platform": "python", "exception_type": "", "transaction": "",
                     "trace_id": "", "data": "{}", "size": 0, **r,
                     "tags": list(r["tags"].items())})
    runtime.store.insert(EVENTS, pa.Table.from_pylist(full, schema=EVENTS.arrow_schema))
    return runtime.store


CASES = [
    ("level:error", [1, 3]),
    ("!level:error", [2]),
    ('browser:"Chrome 120"', [1]),
    ("!browser:Firefox*", [1, 3]),
    ("release:2.*", [2, 3]),
    ("release:[1.0, 2.1]", [1, 3]),
    ("has:url", [1]),
    ("!has:browser", [3]),
    ("user:ann@example.com", [1]),
    ("user:42", [2]),
    ("user.id:42", [2]),
    ("environment:prod sku", []),
    ("SKU", [2]),
    ("50%", [1]),
    ("db_main", [3]),
    ("db_ma", [3]),
    ("missingtag:x", []),
]


def test_conditions_select_the_right_events(store):
    for query, issues in CASES:
        found = search.parse(query, NOW)
        conditions, params = search.event_conditions(found, store.dialect)
        where = " AND ".join(["project_id = 1", *conditions])
        got = sorted(r["issue_id"] for r in store.rows(
            f"SELECT issue_id FROM events WHERE {where}", params))
        assert got == issues, query
