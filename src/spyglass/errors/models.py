"""Metadata of error tracking: issues, the hashes grouped into them, and per-project settings.

Counts (events, users, first/last seen per release) are not kept here: they are aggregated
from the events table when asked, so they are always exactly what is stored. An issue row
holds what people change (status, merges) and what grouping decided (title, culprit).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from spyglass.kernel.meta.models import Base, UTCDateTime, utcnow


class IssueStatus(str, enum.Enum):
    unresolved = "unresolved"
    resolved = "resolved"
    ignored = "ignored"


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("project_id", "short_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    #: Per-project sequence number, shown as PROJECT-12.
    short_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(1000))
    culprit: Mapped[str] = mapped_column(String(500), default="")
    level: Mapped[str] = mapped_column(String(16), default="error")
    #: exception type/value, filename, function ... as grouping described the first event.
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    #: Which grouping strategy produced the first hash (custom-fingerprint, app-stacktrace ...).
    variant: Mapped[str] = mapped_column(String(32), default="")
    #: The text the similarity model compares (types, parameterized value, in-app frames).
    similarity_text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=IssueStatus.unresolved.value, index=True)
    #: "new", "regressed", "escalating" ... a qualifier of the status, shown as a badge.
    substatus: Mapped[str] = mapped_column(String(16), default="new")
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    first_release: Mapped[str] = mapped_column(String(200), default="")
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Resolved "in next release": events from releases up to this one do not reopen it.
    resolved_in_release: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ignored_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ignore_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ignore_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    regressed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Set when this issue was merged into another; its events then count there.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="SET NULL"), nullable=True, index=True
    )


class IssueHash(Base):
    """A grouping hash and the issue that owns it; merging moves hashes."""

    __tablename__ = "issue_hashes"
    __table_args__ = (UniqueConstraint("project_id", "hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    hash: Mapped[str] = mapped_column(String(32))
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    #: "hash" when the fingerprint matched exactly, "similar:<score>" when the model merged it.
    how: Mapped[str] = mapped_column(String(32), default="hash")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ErrorSettings(Base):
    """Per-project error tracking settings: grouping rules, scrubbing, quotas."""

    __tablename__ = "error_settings"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint_rules: Mapped[str] = mapped_column(Text, default="")
    stacktrace_rules: Mapped[str] = mapped_column(Text, default="")
    #: Extra field names to scrub (one per line), and names never to scrub.
    sensitive_fields: Mapped[str] = mapped_column(Text, default="")
    safe_fields: Mapped[str] = mapped_column(Text, default="")
    scrub_ip_addresses: Mapped[bool] = mapped_column(default=False)
    #: Events per minute with a burst allowance; 0 = unlimited (only server capacity limits).
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=0)
    rate_limit_burst: Mapped[int] = mapped_column(Integer, default=0)
    spike_protection: Mapped[bool] = mapped_column(default=False)
    #: Similarity merge: off, or the score from which a new hash joins the nearest issue.
    similarity_merge: Mapped[bool] = mapped_column(default=True)
    #: Apdex threshold T of the Performance pages (satisfied <= T, tolerating <= 4T).
    apdex_threshold_ms: Mapped[int] = mapped_column(Integer, default=300, server_default="300")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
