"""Retention: old rows of the tables that grow without bound, removed in small batches.

What goes (``retention:`` in the rules file, :class:`~alert_jobs.config.retention.
RetentionConfig`): events older than ``events`` (400 days), evaluations older than
``evaluations`` (35 days), notifications delivered or failed for good more than
``delivered_notifications`` ago (7 days; undelivered ones always stay). Families trim
their own tables through their ``trim`` hook (heartbeat pings: the newest
``pings_per_check`` per check).

What never goes: anything younger than its setting; current alert state
(``alert_alerts``), silences, rule settings, notification groups, used action links
(a small table that makes a used link refuse a replay); the alert-quality
episodes and rollups (``alert_episodes``: one row per alert episode, what the monthly
reviews are computed from).

How: each batch is one short transaction that deletes at most ``batch`` rows chosen by
primary key (``DELETE … WHERE id IN (SELECT id … LIMIT n)``), oldest first, so an
evaluation running meanwhile waits for one batch at most (SQLite has one writer) and
PostgreSQL never holds a long lock; the loop ends when a batch comes back short. Events
are chosen by their time index; evaluations and notifications, which have none, by an
``id`` bound below the first row written after the cutoff (found once, by a read), so
no batch reads the rows that stay. A row written out of time order (a back-dated
import) above that bound waits until the bound passes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from alert_jobs.config.retention import RetentionConfig
from alert_jobs.store import schema
from alert_jobs.store.db import Database


@dataclass
class Trimmed:
    """Rows removed per table, batches run and seconds spent."""

    rows: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def delete_in_batches(db: Database, table: sa.Table, where: sa.ColumnElement[bool],
                      batch: int, trimmed: Trimmed, *,
                      order_by: sa.ColumnElement[Any] | None = None,
                      written_before: tuple[sa.Column[Any], datetime] | None = None) -> None:
    """Delete the rows of ``table`` matching ``where``, ``batch`` at a time, oldest first
    (by ``order_by``, an indexed column; else by ``id``), each batch its own transaction.

    ``written_before=(column, moment)``: ``column`` is the time each row was written
    (so it grows with ``id``); only rows written before ``moment`` are considered, by an
    ``id`` bound found once. Without it, the last batch — the one that finds nothing
    left — would read every row kept (evaluations have no index on their time), holding
    SQLite's one writer lock all along: 171 ms over 1.7M rows, seconds at real size
    (``benchmarks/retention_bench.py``).
    """
    pk = table.c.id
    if written_before is not None:
        column, moment = written_before
        with db.read() as conn:  # a read: writers are not held up meanwhile
            boundary = conn.execute(sa.select(pk).where(column >= moment).order_by(pk)
                                    .limit(1)).scalar()
        if boundary is not None:
            where = sa.and_(where, pk < boundary)
    chosen = (sa.select(pk).where(where).order_by(pk if order_by is None else order_by)
              .limit(batch).scalar_subquery())
    statement = table.delete().where(pk.in_(chosen))
    while True:
        with db.tx() as conn:
            removed = int(conn.execute(statement).rowcount or 0)
        trimmed.batches += 1
        trimmed.add(table.name, removed)
        if removed < batch:
            return


def trim_timeline(db: Database, policy: RetentionConfig, now: datetime,
                  trimmed: Trimmed) -> None:
    """The core tables (see the module docstring)."""
    e, v, o = schema.events, schema.evaluations, schema.outbox
    events_before = now - policy.events  # by their time index
    delete_in_batches(db, e, e.c.at < events_before, policy.batch, trimmed, order_by=e.c.at)
    evaluations_before = now - policy.evaluations  # written at their time, in id order
    delete_in_batches(db, v, v.c.at < evaluations_before, policy.batch, trimmed,
                      written_before=(v.c.at, evaluations_before))
    done = now - policy.delivered_notifications  # delivered after they were created
    delete_in_batches(db, o, sa.or_(o.c.delivered_at < done, o.c.failed_at < done),
                      policy.batch, trimmed, written_before=(o.c.created_at, done))


FamilyTrim = Callable[[Database, RetentionConfig, datetime, Trimmed], None]


def trim(db: Database, policy: RetentionConfig, now: datetime,
         family_trims: dict[str, FamilyTrim] | None = None) -> Trimmed:
    """Everything retention removes at ``now``; ``family_trims``: each family's hook."""
    started = time.perf_counter()
    trimmed = Trimmed()
    trim_timeline(db, policy, now, trimmed)
    for _name, hook in sorted((family_trims or {}).items()):
        hook(db, policy, now, trimmed)
    trimmed.seconds = time.perf_counter() - started
    return trimmed
