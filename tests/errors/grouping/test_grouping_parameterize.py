import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.errors.grouping import parameterize


@pytest.mark.parametrize(
    "text, expected",
    [
        ("order 1234 not found", "order <int> not found"),
        ("took 3.25 of it", "took <float> of it"),
        ("user bob.smith+x@example.co.uk missing", "user <email> missing"),
        ("GET https://api.example.com/v1/users/12?x=1 failed", "GET <url> failed"),
        ("object 123e4567-e89b-12d3-a456-426614174000 gone", "object <uuid> gone"),
        ("at 2026-11-27T10:30:27.167372Z", "at <datetime>"),
        ("at 2026-11-27 10:30:27", "at <datetime>"),
        ("Tue, 27 Nov 2026 10:30:00 GMT", "<datetime>"),
        ("27/Nov/2026:10:30:00 +0000 GET", "<datetime> GET"),
        ("on 2026-11-27", "on <date>"),
        ("on Nov 27, 2026", "on <date>"),
        ("from 10.0.0.12:5432", "from <ip>"),
        ("from fe80::1ff:fe23:4567:890a now", "from <ip> now"),
        ("ptr 0x7f61a3336c90", "ptr <hex>"),
        ("commit a3f5c9d2e1b4f6 on facade", "commit <hex> on facade"),
        ("timeout after 30s", "timeout after <duration>"),
        ("worker-3 says utf8", "worker-<int> says utf8"),
        ("KeyError: 'missing'", "KeyError: 'missing'"),
    ],
)
def test_placeholders(text, expected):
    assert parameterize(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_and_is_idempotent(text):
    once = parameterize(text)
    assert parameterize(once) == once


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["order", " ", "12", "0x1f", "a@b.io", "1.2.3.4", "-", ":", "2026-01-02", "T", "abc123def0", "."]), max_size=12))
def test_idempotent_on_near_misses(parts):
    once = parameterize("".join(parts))
    assert parameterize(once) == once
