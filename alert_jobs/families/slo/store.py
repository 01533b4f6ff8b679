"""Per-bucket good/total counts of each SLO, in the timeline database (like recording
rules): a 30-day window is a difference of two running totals, not a 30-day scan.

Each row is one bucket ``[start, end)`` of one rule, appended in time order, and carries
running totals since the rule's first bucket (``cum_good``, ``cum_total``,
``cum_covered`` = seconds of buckets with data). The counts of any window ending at the
newest bucket are then the newest row's totals minus those of the row at the window's
start (prorated inside the bucket that straddles it): two indexed lookups per window,
whatever its length. Appends are idempotent on ``(rule, end)`` and happen in one
transaction that holds the rule's lock, so a schedule tick and a manual run of the same
SLO cannot count a bucket twice.

SKELETON: the table and the method signatures are fixed; bodies are the ``slo-flow``
work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from alert_jobs.families.slo.check import Bucket, Counts
from alert_jobs.store import Timeline, schema

slo_buckets = sa.Table(
    "alert_slo_buckets",
    schema.metadata,
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("end", schema.UTCDateTime, primary_key=True),
    sa.Column("start", schema.UTCDateTime, nullable=False),
    sa.Column("good", sa.Float, nullable=False),
    sa.Column("total", sa.Float, nullable=False),
    sa.Column("has_data", sa.Boolean, nullable=False),
    sa.Column("cum_good", sa.Float, nullable=False),
    sa.Column("cum_total", sa.Float, nullable=False),
    sa.Column("cum_covered", sa.Float, nullable=False),
    sa.Column("run_id", sa.String(64)),
)


class SloBucketStore:
    """The buckets of every SLO rule in one timeline database."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def last_end(self, rule: str) -> datetime | None:
        """End of the rule's newest stored bucket (None: the rule needs its backfill)."""
        raise NotImplementedError

    def append(self, rule: str, buckets: Sequence[Bucket], *, run_id: str | None = None
               ) -> int:
        """Store ``buckets`` (in time order, each starting at or after the newest stored
        end) with their running totals; buckets already stored are skipped. Returns how
        many were new."""
        raise NotImplementedError

    def window_counts(self, rule: str, spans: Sequence[timedelta], *,
                      end: datetime | None = None) -> dict[timedelta, Counts]:
        """Counts of each window ``[end − span, end)`` (``end``: the newest bucket's end),
        in one read."""
        raise NotImplementedError

    def series(self, rule: str, start: datetime, end: datetime) -> list[Bucket]:
        """The stored buckets ending inside ``(start, end]``, oldest first (reports)."""
        raise NotImplementedError

    def trim(self, rule: str, before: datetime) -> int:
        """Delete buckets ending before ``before`` (retention: keep at least the period)
        without breaking the running totals of the rest."""
        raise NotImplementedError
