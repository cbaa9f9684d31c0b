"""The error-tracking service of a running server: processing, quotas and issue upkeep."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from spyglass.errors.envelope import Envelope
from spyglass.errors.models import Issue
from spyglass.errors.offload import IngestWorkers, auto_count
from spyglass.errors.processing import EventProcessor
from spyglass.errors.quotas import Quotas, rate_limits_header
from spyglass.errors.state import detect_regressions, merge, unmerge
from spyglass.kernel.runtime import Runtime

ISSUE_STATE_INTERVAL_S = 5
LIMITED_TYPES = {"event": "error", "transaction": "transaction"}


@dataclass
class Limited:
    """Items the project's quota refused; what to tell the SDK and what to record."""

    retry_after: int
    reason: str
    categories: list[str]
    dropped: int
    #: True when nothing in the envelope was accepted (answer 429 rather than 200).
    everything: bool
    outcome_row: dict[str, Any]

    @property
    def header(self) -> str:
        return rate_limits_header(self.retry_after, self.categories, self.reason)

    @property
    def message(self) -> str:
        return f"{self.dropped} item(s) dropped: {self.reason.replace('_', ' ')}"


class ErrorService:
    def __init__(self, runtime: Runtime, merge_threshold: float | None = None) -> None:
        self.runtime = runtime
        self.processor = EventProcessor(runtime.db, runtime.blobs, merge_threshold)
        self.quotas = Quotas()
        count = runtime.settings.ingest_workers
        count = auto_count() if count < 0 else count
        #: Started on first use, from the server's event loop.
        self.workers = IngestWorkers(count) if count > 0 else None
        if self.workers is not None:
            runtime.add_service(lambda: self.workers, lambda workers: workers.stop())
        runtime.jobs.add("issue-states", ISSUE_STATE_INTERVAL_S, self.update_issue_states)

    def merge(self, db: Session, target: Issue, others: list[Issue]) -> None:
        """Merge ``others`` into ``target`` and commit; this process then forgets what it
        cached of the project's hash → issue decisions, which the merge changed."""
        merge(db, self.runtime.store, target, others)
        db.commit()
        self.processor.resolver.forget(target.project_id)

    def unmerge(self, db: Session, issue: Issue, hash_: str) -> Issue:
        """Split ``hash_`` out of ``issue`` into a new issue and commit (and forget, as
        :meth:`merge`); raises ``StateError`` with nothing changed when it cannot."""
        new = unmerge(db, self.runtime.store, issue, hash_)
        db.commit()
        self.processor.resolver.forget(issue.project_id)
        return new

    def update_issue_states(self) -> list[int]:
        """Reopen regressed issues and expire ignores (a periodic job on the leader)."""
        with self.runtime.db.session() as s:
            return detect_regressions(s, self.runtime.store)

    def apply_quotas(self, project_id: int, envelope: Envelope) -> Limited | None:
        """Drop the envelope's events that exceed the project's quota (in place)."""
        cfg = self.processor.config(project_id)
        if not cfg.rate_limit_per_minute and not cfg.spike_protection:
            return None
        kept, dropped, decision, categories = [], 0, None, set()
        for item in envelope.items:
            category = LIMITED_TYPES.get(item.type)
            if category is None:
                kept.append(item)
                continue
            d = self.quotas.check(project_id, cfg.rate_limit_per_minute, cfg.rate_limit_burst,
                                  cfg.spike_protection)
            if d.allowed:
                kept.append(item)
            else:
                dropped += 1
                decision = d
                categories.add(category)
        if decision is None:
            return None
        envelope.items = kept
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return Limited(
            retry_after=decision.retry_after, reason=decision.reason,
            categories=sorted(categories), dropped=dropped, everything=not kept,
            outcome_row={"project_id": project_id, "timestamp": now, "outcome": "rate_limited",
                         "reason": decision.reason, "category": sorted(categories)[0],
                         "quantity": dropped},
        )
