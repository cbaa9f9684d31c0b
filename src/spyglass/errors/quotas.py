"""Per-project rate limits and spike protection for events (both opt-in per project).

- **Rate limit**: a token bucket refilled at ``rate_limit_per_minute`` with room for
  ``rate_limit_burst`` extra events, so short bursts pass and a sustained flood does not.
- **Spike protection**: each project's events are counted per minute; when the current minute
  passes ten times the average of the previous hour (and at least ``SPIKE_FLOOR`` events), the
  rest of that minute is dropped and the spike is recorded for the UI.

State is per process: with N processes behind a load balancer each enforces its share.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

SPIKE_FACTOR = 10.0
SPIKE_FLOOR = 100
HISTORY_MINUTES = 60


@dataclass
class Decision:
    allowed: bool
    retry_after: int = 0
    reason: str = ""


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class _Minutes:
    minute: int = 0
    count: int = 0
    history: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY_MINUTES))
    spike: "Spike | None" = None

    def roll(self, minute: int) -> None:
        if minute <= self.minute:
            return
        if self.minute:
            self.history.append(self.count)
            for _ in range(min(minute - self.minute - 1, HISTORY_MINUTES)):
                self.history.append(0)  # quiet minutes count as zero
        self.minute, self.count, self.spike = minute, 0, None

    @property
    def baseline(self) -> float:
        return sum(self.history) / len(self.history) if self.history else 0.0


@dataclass
class Spike:
    project_id: int
    started: float
    baseline: float
    dropped: int = 0


class Quotas:
    def __init__(self, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._minutes: dict[int, _Minutes] = {}
        self._lock = threading.Lock()
        self.spikes: deque[Spike] = deque(maxlen=200)

    def check(self, project_id: int, per_minute: int, burst: int, spike_protection: bool) -> Decision:
        """Take one event's worth of quota, or say why not."""
        now = self._clock()
        with self._lock:
            if spike_protection:
                decision = self._spike(project_id, now)
                if not decision.allowed:
                    return decision
            if per_minute > 0:
                return self._bucket(project_id, now, per_minute, burst)
        return Decision(True)

    def _bucket(self, project_id: int, now: float, per_minute: int, burst: int) -> Decision:
        capacity = per_minute + max(0, burst)
        rate = per_minute / 60.0
        b = self._buckets.get(project_id)
        if b is None:
            b = self._buckets[project_id] = _Bucket(capacity, now)
        b.tokens = min(capacity, b.tokens + (now - b.updated) * rate)
        b.updated = now
        if b.tokens >= 1:
            b.tokens -= 1
            return Decision(True)
        return Decision(False, max(1, math.ceil((1 - b.tokens) / rate)), "quota_exceeded")

    def _spike(self, project_id: int, now: float) -> Decision:
        m = self._minutes.setdefault(project_id, _Minutes())
        m.roll(int(now // 60))
        limit = max(SPIKE_FLOOR, SPIKE_FACTOR * m.baseline)
        # Five minutes of history before judging, so a new project's first burst is not a spike.
        if len(m.history) >= 5 and m.count >= limit:
            if m.spike is None:
                m.spike = Spike(project_id, now, m.baseline)
                self.spikes.append(m.spike)
            m.spike.dropped += 1
            return Decision(False, max(1, 60 - int(now % 60)), "spike_protection")
        m.count += 1
        return Decision(True)


def rate_limits_header(retry_after: int, categories: list[str], reason: str) -> str:
    """``X-Sentry-Rate-Limits``: ``<seconds>:<categories>:<scope>:<reason>``."""
    return f"{retry_after}:{';'.join(categories)}:project:{reason}"
