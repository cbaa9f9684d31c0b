"""Per-project rate limits and spike protection."""

from __future__ import annotations

from spyglass.errors.quotas import Quotas, rate_limits_header


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_allows_burst_then_limits_then_refills():
    clock = Clock()
    q = Quotas(clock)
    allowed = sum(q.check(1, per_minute=60, burst=20, spike_protection=False).allowed for _ in range(100))
    assert allowed == 80  # 60 per minute + 20 burst
    d = q.check(1, 60, 20, False)
    assert not d.allowed and d.retry_after == 1 and d.reason == "quota_exceeded"
    clock.t += 10  # 10 seconds refill 10 events
    assert sum(q.check(1, 60, 20, False).allowed for _ in range(20)) == 10
    assert q.check(2, 60, 0, False).allowed  # other projects are not affected


def test_no_limits_by_default():
    q = Quotas(Clock())
    assert all(q.check(1, 0, 0, False).allowed for _ in range(10_000))


def test_spike_protection_caps_a_tenfold_surge():
    clock = Clock()
    q = Quotas(clock)
    for _minute in range(10):  # a steady 50 events per minute
        for _ in range(50):
            assert q.check(1, 0, 0, True).allowed
        clock.t += 60
    results = [q.check(1, 0, 0, True) for _ in range(2000)]
    assert sum(r.allowed for r in results) == 500  # 10 x the baseline of 50
    assert results[-1].reason == "spike_protection" and 0 < results[-1].retry_after <= 60
    assert len(q.spikes) == 1 and q.spikes[0].dropped == 1500 and q.spikes[0].baseline == 50
    clock.t += 60
    assert q.check(1, 0, 0, True).allowed  # the next minute starts afresh


def test_header_format():
    assert rate_limits_header(60, ["error", "transaction"], "quota_exceeded") == \
        "60:error;transaction:project:quota_exceeded"
