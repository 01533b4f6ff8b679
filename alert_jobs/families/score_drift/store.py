"""Stored reference summaries of ``score_drift`` rules, in the timeline database.

A reference is built on its own schedule (daily by default) or by hand, and each
check run only reads it back: one row per (rule, segment, slot), where slot is -1
for a fixed or pinned reference and the UTC hour of the week (0 = Monday 00:00) for
a seasonal one. Rebuilding replaces a segment's rows in one transaction, so a check
never sees half a reference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from alert_jobs.families.score_drift.check import Histogram
from alert_jobs.store import Timeline, schema, utcnow

drift_references = sa.Table(
    "alert_drift_references",
    schema.metadata,
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("segment", sa.String(255), primary_key=True),  # "" for an unsegmented rule
    sa.Column("slot", sa.Integer, primary_key=True),  # -1, or hour of the week 0..167 (UTC)
    sa.Column("window_start", schema.UTCDateTime, nullable=False),
    sa.Column("window_end", schema.UTCDateTime, nullable=False),
    sa.Column("covered_seconds", sa.Float, nullable=False),
    sa.Column("settings", sa.String(64), nullable=False),  # hash of what the bins depend on
    sa.Column("summary", sa.JSON, nullable=False),  # sparse fine histogram + counts
    sa.Column("built_at", schema.UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(64)),
)

ALL_HOURS = -1


def settings_hash(settings: dict[str, Any]) -> str:
    """Stable hash of the settings a reference depends on (grid, columns, window kind)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ReferenceSlot:
    """One stored summary: a histogram and the time it covers."""

    slot: int
    histogram: Histogram
    window_start: datetime
    window_end: datetime
    covered_seconds: float
    settings: str
    built_at: datetime


class DriftReferenceStore:
    def __init__(self, timeline: Timeline):
        self.timeline = timeline

    def replace(self, rule: str, segment: str, slots: list[ReferenceSlot], *,
                run_id: str | None = None) -> None:
        """Swap a segment's stored reference for ``slots`` (one transaction)."""
        t = drift_references
        with self.timeline.tx() as conn:
            conn.execute(t.delete().where(t.c.rule == rule, t.c.segment == segment))
            if slots:
                conn.execute(t.insert(), [{
                    "rule": rule, "segment": segment, "slot": s.slot,
                    "window_start": s.window_start, "window_end": s.window_end,
                    "covered_seconds": s.covered_seconds, "settings": s.settings,
                    "summary": s.histogram.as_json(), "built_at": s.built_at,
                    "run_id": run_id} for s in slots])

    def load(self, rule: str, segment: str, slots: list[int] | None = None
             ) -> list[ReferenceSlot]:
        """The stored slots of one segment (all, or only ``slots``), in slot order."""
        t = drift_references
        query = sa.select(t).where(t.c.rule == rule, t.c.segment == segment)
        if slots is not None:
            query = query.where(t.c.slot.in_(slots))
        with self.timeline.read() as conn:
            rows = conn.execute(query.order_by(t.c.slot)).all()
        return [ReferenceSlot(r.slot, Histogram.from_json(r.summary), r.window_start,
                              r.window_end, r.covered_seconds, r.settings, r.built_at)
                for r in rows]

    def segments(self, rule: str) -> dict[str, datetime]:
        """Segments with a stored reference, and when each was built."""
        t = drift_references
        with self.timeline.read() as conn:
            rows = conn.execute(sa.select(t.c.segment, sa.func.max(t.c.built_at))
                                .where(t.c.rule == rule).group_by(t.c.segment)).all()
        return {r[0]: schema.UTCDateTime().process_result_value(r[1], self.timeline.engine
                                                                .dialect) or utcnow()
                for r in rows}

    def forget(self, rule: str, keep: set[str] | None = None) -> int:
        """Drop a rule's stored references (except the segments in ``keep``)."""
        t = drift_references
        query = t.delete().where(t.c.rule == rule)
        if keep:
            query = query.where(t.c.segment.not_in(sorted(keep)))
        with self.timeline.tx() as conn:
            return int(conn.execute(query).rowcount or 0)
