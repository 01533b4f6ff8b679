"""Baseline state in the timeline database: backfilled points and adopted level shifts.

The live history of a baseline rule is its own evaluations (``alert_evaluations``, the
timeline stores every one with its value); this module adds what evaluations cannot
hold:

* ``alert_baseline_points``: values a new rule computed for windows *before* its first
  evaluation (the backfill), so it has a baseline on its first day. They never overlap
  its evaluations (a backfill only covers times before ``backfill_before``).
* ``alert_baselines``: per alert instance (fingerprint), the adopted level shifts and
  the backfill's progress.

:meth:`BaselineStore.history` reads a slot's points from both tables in one statement
(``UNION ALL`` of range scans on ``(rule, at)`` and ``(fingerprint, at)``), leaving out
evaluations that were alerting (except those of an adopted shift's streak).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from alert_jobs.core.baseline import Point, Shift
from alert_jobs.store import schema
from alert_jobs.store.db import Database

baseline_points = sa.Table(
    "alert_baseline_points",
    schema.metadata,
    sa.Column("fingerprint", sa.String(32), primary_key=True),
    sa.Column("at", schema.UTCDateTime, primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("value", sa.Float),  # NULL: the window had no value (kept: it was computed)
)

baselines = sa.Table(
    "alert_baselines",
    schema.metadata,
    sa.Column("fingerprint", sa.String(32), primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False, index=True),
    # [{"since": iso, "adopted_at": iso, "offset": float}, …], oldest first
    sa.Column("shifts", sa.JSON, nullable=False),
    sa.Column("backfill_before", schema.UTCDateTime),  # first evaluation; None: not started
    sa.Column("backfill_done", sa.Integer, nullable=False, default=0),
    sa.Column("backfill_total", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", schema.UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class BaselineState:
    """One alert instance's adopted shifts and backfill progress."""

    fingerprint: str
    rule: str
    shifts: tuple[Shift, ...] = ()
    backfill_before: datetime | None = None
    backfill_done: int = 0
    backfill_total: int = 0

    @property
    def backfill_finished(self) -> bool:
        return self.backfill_before is not None and self.backfill_done >= self.backfill_total


class BaselineStore:
    """Reads and writes of baseline history and state (``timeline.baselines``)."""

    def __init__(self, db: Database):
        self.db = db

    def history(self, rule: str, fingerprint: str, ranges: Sequence[tuple[datetime, datetime]],
                shifts: Sequence[Shift] = ()) -> list[Point]:
        """The points in ``ranges`` (UTC ``[start, end)``), in one statement: the rule's
        evaluations of ``fingerprint`` with a value whose status was not ``alert`` (or
        whose time lies in an adopted shift's ``[since, adopted_at]``), plus the
        backfilled points with a value. Any order."""
        raise NotImplementedError

    def states(self, fingerprints: Sequence[str]) -> dict[str, BaselineState]:
        """The stored state of each given fingerprint that has one (one query)."""
        raise NotImplementedError

    def save(self, state: BaselineState, now: datetime) -> None:
        """Insert or replace ``state`` (one short transaction)."""
        raise NotImplementedError

    def add_points(self, rule: str, fingerprint: str,
                   points: Sequence[tuple[datetime, float | None]]) -> int:
        """Store backfilled values; a time already stored is skipped (idempotent, so a
        schedule tick and a manual run backfilling at once store each point once).
        Returns how many were new."""
        raise NotImplementedError

    def residuals(self, rule: str, fingerprint: str, since: datetime) -> list[float]:
        """``value − details.expected_value`` of the rule's evaluations of ``fingerprint``
        since ``since`` that have both (what a level shift adopts)."""
        raise NotImplementedError

    def forget(self, rule: str) -> int:
        """Delete a rule's backfilled points and state (``rules reset``-style); the
        evaluations stay. Returns rows deleted."""
        raise NotImplementedError

    def trim(self, before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` backfilled points older than ``before`` (retention)."""
        raise NotImplementedError
