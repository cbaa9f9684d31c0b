"""Trace sampling per project, applied at OTLP ingest: which spans are kept.

A project's policy (the ``trace_sampling`` table, edited on its Tracing settings page) keeps:

- **head**: ``percent`` of traces, chosen by the trace id (its lower 64 bits against
  ``percent`` of 2^64, the rule of the OpenTelemetry SDKs' ``TraceIdRatioBased`` sampler): the
  same traces are kept whichever service or process sends their spans;
- **tail** rules on top, decided per request: every trace with a span in error status
  (``keep_errors``), every trace with a span lasting ``slow_ms`` or more.

A tail decision sees only the spans of one request. So that a trace kept for an error or a
slow span keeps its spans that arrive later, each process remembers the last 100,000 traces
it kept that way for ten minutes; spans that arrived *before* the deciding span, in an
earlier request or at another process, were decided by the percentage alone.

Each request with a policy counts its kept (``accepted``, by reason) and dropped
(``sampled_out``) spans into the ``outcomes`` table (category ``span``), written with the
spans. Exceptions recorded on spans reach the error tracker whether or not their span is kept.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import structlog
from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Float, ForeignKey, Integer, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from spyglass.kernel.auth.deps import Caller, db_session, page_caller
from spyglass.kernel.auth.deps import project_by_slug as _project
from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import Base, Organization, Project, Role, UTCDateTime, utcnow
from spyglass.kernel.web import templating

log = structlog.get_logger(__name__)

#: How often each process re-reads the policies (a change made elsewhere applies within this).
REFRESH_S = 5.0
KEPT_TRACES = 100_000
KEPT_TTL_S = 600.0
_FULL = 1 << 64


class TraceSampling(Base):
    """A project's trace sampling policy; no row (or ``enabled`` false) keeps everything."""

    __tablename__ = "trace_sampling"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(default=False)
    #: Keep every trace with a span in error status.
    keep_errors: Mapped[bool] = mapped_column(default=True)
    #: Keep every trace with a span at least this long; 0 = no rule.
    slow_ms: Mapped[int] = mapped_column(Integer, default=0)
    #: Percentage of the other traces kept (by trace id).
    percent: Mapped[float] = mapped_column(Float, default=100.0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


@dataclass(frozen=True)
class Policy:
    keep_errors: bool = True
    slow_ms: int = 0
    percent: float = 100.0

    @property
    def threshold(self) -> int:
        """Trace ids whose lower 64 bits are below this are kept by the percentage."""
        return int(min(max(self.percent, 0.0), 100.0) / 100 * _FULL)


def head_keeps(trace_id: str, percent: float) -> bool:
    """Whether head sampling at ``percent`` keeps this trace (hex id), as the OTel SDKs decide."""
    return int(trace_id[16:32] or "0", 16) < Policy(percent=percent).threshold


class KeptTraces:
    """Traces kept by a tail rule lately, so their later spans are kept too (per process)."""

    def __init__(self, size: int = KEPT_TRACES, ttl: float = KEPT_TTL_S) -> None:
        self._kept: OrderedDict[tuple[int, str], float] = OrderedDict()
        self._size, self._ttl = size, ttl
        self._lock = threading.Lock()

    def add(self, project_id: int, trace_id: str) -> None:
        with self._lock:
            self._kept[(project_id, trace_id)] = time.monotonic() + self._ttl
            self._kept.move_to_end((project_id, trace_id))
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)

    def __contains__(self, key: tuple[int, str]) -> bool:
        with self._lock:
            until = self._kept.get(key)
        return until is not None and until > time.monotonic()


class Sampler:
    """The policies of all projects, kept in memory and re-read every ``REFRESH_S``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.kept = KeptTraces()
        self._policies: dict[int, Policy] = {}
        self._loaded_at: float | None = None
        self._loading = threading.Lock()

    def policy(self, project_id: int) -> Policy | None:
        if self._loaded_at is None:
            self.reload()  # once per process; later reloads run in the background
        elif time.monotonic() - self._loaded_at > REFRESH_S and not self._loading.locked():
            threading.Thread(target=self.reload, name="spyglass-sampling", daemon=True).start()
        return self._policies.get(project_id)

    def reload(self) -> None:
        if not self._loading.acquire(blocking=False):
            return
        try:
            with self.db.session() as s:
                rows = s.scalars(select(TraceSampling).where(TraceSampling.enabled.is_(True)))
                self._policies = {r.project_id: Policy(bool(r.keep_errors), r.slow_ms or 0,
                                                       float(r.percent)) for r in rows}
        except Exception as exc:  # noqa: BLE001 -- keep the last policies; retry next time
            log.error("sampling_reload_failed", error=repr(exc))
        finally:
            self._loaded_at = time.monotonic()
            self._loading.release()

    def set(self, project_id: int, policy: Policy | None) -> None:
        """Apply a saved policy in this process at once (others pick it up on reload)."""
        policies = dict(self._policies)
        if policy is None:
            policies.pop(project_id, None)
        else:
            policies[project_id] = policy
        self._policies = policies

    def apply(self, project_id: int, spans: pa.Table) -> tuple[pa.Table, list[dict[str, Any]]]:
        """The spans kept, and the outcome rows counting kept and dropped ones."""
        policy = self.policy(project_id)
        if policy is None or spans.num_rows == 0:
            return spans, []
        trace_ids = spans.column("trace_id").to_pylist()
        forced: dict[str, str] = {}
        slow_ns = policy.slow_ms * 1_000_000
        if policy.keep_errors or slow_ns:
            statuses = spans.column("status_code").to_pylist()
            durations = spans.column("duration_ns").to_pylist()
            for tid, status, duration in zip(trace_ids, statuses, durations):
                if policy.keep_errors and status == 2:
                    forced[tid] = "error"
                elif slow_ns and duration >= slow_ns and tid not in forced:
                    forced[tid] = "slow"
        threshold = policy.threshold
        decision: dict[str, str] = {}
        for tid in set(trace_ids):
            if tid in forced:
                decision[tid] = forced[tid]
                self.kept.add(project_id, tid)
            elif (project_id, tid) in self.kept:
                decision[tid] = "kept_trace"
            elif int(tid[16:32], 16) < threshold:
                decision[tid] = "percent"
            else:
                decision[tid] = ""
        reasons = Counter(decision[tid] for tid in trace_ids)
        dropped = reasons.pop("", 0)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        outcomes = [_outcome(project_id, now, "accepted", reason, n)
                    for reason, n in reasons.items()]
        if dropped:
            outcomes.append(_outcome(project_id, now, "sampled_out", "trace_sampling", dropped))
            spans = spans.filter(pa.array([bool(decision[tid]) for tid in trace_ids]))
        return spans, outcomes


def _outcome(project_id: int, at: dt.datetime, outcome: str, reason: str, n: int,
             ) -> dict[str, Any]:
    return {"project_id": project_id, "timestamp": at, "outcome": outcome, "reason": reason,
            "category": "span", "quantity": n}


def span_counts(store: Any, project_id: int, since: dt.datetime) -> dict[str, int]:
    """Spans kept (by reason: error, slow, kept_trace, percent) and dropped since ``since``."""
    rows = store.rows(
        "SELECT outcome, reason, sum(quantity) AS quantity FROM outcomes "
        "WHERE project_id = {p:UInt64} AND category = 'span' "
        "AND timestamp >= {since:DateTime64(6)} GROUP BY outcome, reason",
        {"p": project_id, "since": since})
    counts: Counter[str] = Counter()
    for r in rows:
        n = int(r["quantity"])
        if r["outcome"] == "sampled_out":
            counts["dropped"] += n
        elif r["outcome"] == "accepted":
            counts["kept"] += n
            counts[f"kept_{r['reason']}"] += n
    return dict(counts)


# -- the settings page -----------------------------------------------------------------------

templating.add_template_dir(Path(__file__).parent / "templates")
templating.register_settings_tab("tracing", "Tracing", "/tracing")
router = APIRouter(include_in_schema=False)




def _values(row: TraceSampling | None) -> dict[str, Any]:
    row = row or TraceSampling(enabled=False, keep_errors=True, slow_ms=0, percent=100.0)
    return {"enabled": bool(row.enabled), "keep_errors": row.keep_errors is not False,
            "slow_ms": row.slow_ms or 0, "percent": _percent_text(row.percent),
            "updated_at": row.updated_at}


def _percent_text(value: float | None) -> str:
    value = 100.0 if value is None else float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _page(request: Request, db: Session, caller: Caller, org: Organization, project: Project,
          role: Role, values: dict[str, Any], errors: dict[str, str] | None = None,
          status: int = 200) -> Response:
    since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=1)
    counts = span_counts(request.app.state.runtime.store, project.id, since)
    return templating.render(request, "sampling/settings.html", {
        "caller": caller, "org": org, "project": project, "role": role,
        "base": f"/o/{org.slug}/p/{project.slug}",
        "can_admin_project": role.at_least(Role.admin), "values": values,
        "field_errors": errors or {}, "counts": counts,
        "notice": "Sampling policy saved." if request.query_params.get("done") == "saved"
        else None,
    }, status, db=db)


@router.get("/o/{org_slug}/p/{project_slug}/settings/tracing")
def tracing_settings(request: Request, org_slug: str, project_slug: str,
                     caller: Caller = Depends(page_caller),
                     db: Session = Depends(db_session)) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.viewer)
    return _page(request, db, caller, org, project, role,
                 _values(db.get(TraceSampling, project.id)))


@router.post("/o/{org_slug}/p/{project_slug}/settings/tracing")
def save_tracing_settings(request: Request, org_slug: str, project_slug: str,
                          enabled: str = Form(""), keep_errors: str = Form(""),
                          slow_ms: str = Form("0"), percent: str = Form("100"),
                          caller: Caller = Depends(page_caller),
                          db: Session = Depends(db_session)) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.admin)
    errors: dict[str, str] = {}
    slow_text = (slow_ms or "0").strip() or "0"
    if not slow_text.isdigit() or int(slow_text) > 86_400_000:
        errors["slow_ms"] = "A whole number of milliseconds, 0 for no rule."
    try:
        share = float((percent or "").strip())
        if not 0 <= share <= 100:
            raise ValueError
    except ValueError:
        errors["percent"] = "A number from 0 to 100."
        share = 100.0
    values = {"enabled": bool(enabled), "keep_errors": bool(keep_errors), "slow_ms": slow_text,
              "percent": percent}
    row = db.get(TraceSampling, project.id)
    if errors:
        values["updated_at"] = row.updated_at if row else None
        return _page(request, db, caller, org, project, role, values, errors, 400)
    if row is None:
        row = TraceSampling(project_id=project.id)
        db.add(row)
    row.enabled, row.keep_errors = bool(enabled), bool(keep_errors)
    row.slow_ms, row.percent, row.updated_at = int(slow_text), share, utcnow()
    db.commit()
    sampler: Sampler = request.app.state.trace_sampler
    sampler.set(project.id, Policy(row.keep_errors, row.slow_ms, row.percent)
                if row.enabled else None)
    return RedirectResponse(f"/o/{org.slug}/p/{project.slug}/settings/tracing?done=saved",
                            status_code=303)


def install(app: FastAPI) -> None:
    """Sampling and exceptions → error tracker on this server's OTLP ingest, and the page."""
    from spyglass.otel import ingest

    runtime = app.state.runtime
    app.state.trace_sampler = Sampler(runtime.db)
    ingest.connect(runtime.writer, sampler=app.state.trace_sampler,
                   errors=getattr(app.state, "errors", None))
    app.include_router(router)
