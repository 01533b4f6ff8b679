"""Persistence for Redis quota counting: samples and per-window usage, in the timeline DB.

A sample's ``increment`` is the commands attributed to the interval ending at it: its
corrected growth, plus, when it shows a restart, the estimate of what ran between the
previous sample and the restart. After a restart the whole counter is new growth, so
for such a row ``increment - total_commands`` is exactly that estimate; nothing else
needs storing to say later how much of a window's ``used`` was estimated.

:meth:`RedisUsageStore.record` folds one new sample into the window's usage inside a
transaction that holds a per-target lock, so a scheduled run and a manual trigger
checking the same target at once cannot count the same commands twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.families.redis_quota.check import (
    CounterSample,
    HistorySample,
    QuotaWindow,
    RatePoint,
    RestartNote,
    Step,
    WindowUsage,
    advance,
    restart_time,
)
from alert_jobs.store import Timeline, schema

redis_samples = sa.Table(
    "alert_redis_samples",
    schema.metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("target", sa.String(128), nullable=False),
    sa.Column("at", schema.UTCDateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("server_id", sa.String(64), nullable=False, default=""),
    sa.Column("uptime_seconds", sa.Float),
    sa.Column("total_commands", sa.Float, nullable=False),
    sa.Column("increment", sa.Float, nullable=False),
    sa.Column("reset", sa.Boolean, nullable=False, default=False),
    sa.Column("counted", sa.Boolean, nullable=False, default=True),
    sa.Column("keyspace_hits", sa.Float),
    sa.Column("keyspace_misses", sa.Float),
    sa.Column("evicted_keys", sa.Float),
    sa.Column("rejected_connections", sa.Float),
    sa.Column("commands_spent", sa.Integer, nullable=False, default=0),
    sa.Column("run_id", sa.String(64)),
    sa.Index("ix_alert_redis_samples_target_at", "target", "at"),
)

redis_windows = sa.Table(
    "alert_redis_windows",
    schema.metadata,
    sa.Column("target", sa.String(128), primary_key=True),
    sa.Column("window_start", schema.UTCDateTime, primary_key=True),
    sa.Column("window_end", schema.UTCDateTime, nullable=False),
    sa.Column("window_kind", sa.String(8), nullable=False),
    sa.Column("used", sa.Float, nullable=False),
    sa.Column("partial", sa.Boolean, nullable=False),
    sa.Column("resets", sa.Integer, nullable=False, default=0),
    sa.Column("last_at", schema.UTCDateTime, nullable=False),
    sa.Column("last_total", sa.Float, nullable=False),
    sa.Column("last_server_id", sa.String(64), nullable=False, default=""),
    sa.Column("last_uptime", sa.Float),
    sa.Column("updated_at", schema.UTCDateTime, nullable=False),
)

COUNTER_FIELDS = ("keyspace_hits", "keyspace_misses", "evicted_keys", "rejected_connections")
SAMPLE_RETENTION = timedelta(days=35)


@dataclass(frozen=True)
class Recorded:
    """The window's usage after this sample, and what the checks need from history."""

    step: Step
    rate_points: list[RatePoint]
    previous: dict[str, Any] | None  # the sample before this one (same server or not)


class RedisUsageStore:
    def __init__(self, timeline: Timeline):
        self.timeline = timeline

    def record(
        self, target: str, window: QuotaWindow, sample: CounterSample, *, source: str,
        counters: dict[str, float] | None = None, commands_spent: int = 0,
        rate_span: timedelta = timedelta(hours=1), estimate_after: timedelta = timedelta(
            minutes=15), run_id: str | None = None,
    ) -> Recorded:
        t_smp = redis_samples
        with self.timeline.tx() as conn:
            self._lock(conn, target)
            state = self._current_window(conn, target, window.start)
            # Samples back to a rate span before the last one counted: the trailing rate
            # there estimates what a restart since then hid.
            since = min(sample.at, state.last.at if state is not None else sample.at)
            history = [RatePoint(p.at, p.increment) for p in conn.execute(
                sa.select(t_smp.c.at, t_smp.c.increment)
                .where(t_smp.c.target == target, t_smp.c.counted.is_(True),
                       t_smp.c.at >= since - rate_span)
                .order_by(t_smp.c.at, t_smp.c.id)).all()]
            step = advance(state, sample, window, history=history, rate_window=rate_span,
                           estimate_after=estimate_after)
            previous = conn.execute(
                sa.select(t_smp).where(t_smp.c.target == target, t_smp.c.counted.is_(True))
                .order_by(t_smp.c.at.desc(), t_smp.c.id.desc()).limit(1)).first()
            conn.execute(t_smp.insert().values(
                target=target, at=sample.at, source=source, server_id=sample.server_id,
                uptime_seconds=sample.uptime_seconds, total_commands=sample.total,
                increment=step.increment, reset=step.reset, counted=step.counted,
                commands_spent=commands_spent,
                run_id=run_id, **{k: (counters or {}).get(k) for k in COUNTER_FIELDS},
            ))
            if step.counted:
                self._save_window(conn, target, window, step.usage)
                history.append(RatePoint(sample.at, step.increment))
            conn.execute(t_smp.delete().where(t_smp.c.target == target,
                                              t_smp.c.at < sample.at - SAMPLE_RETENTION))
        points = [p for p in history if p.at >= sample.at - rate_span]
        return Recorded(step, points,
                        dict(previous._mapping) if previous is not None else None)

    def history(self, target: str, *, until: datetime, back_to: datetime) -> list[HistorySample]:
        """The counted samples from the last one at or before ``back_to`` to ``until``,
        oldest first: what the hit-rate window and the ops/s levels look back over.

        Starting from the sample at or before ``back_to`` (not after it) lets a level
        held since before ``back_to`` be seen to have held all of that span.
        """
        t = redis_samples
        counted = (t.c.target == target) & t.c.counted.is_(True) & (t.c.at <= until)
        with self.timeline.engine.connect() as conn:
            start = conn.execute(sa.select(sa.func.max(t.c.at))
                                 .where(counted, t.c.at <= back_to)).scalar()
            query = sa.select(t.c.at, t.c.increment, t.c.server_id, t.c.keyspace_hits,
                              t.c.keyspace_misses).where(counted)
            if start is not None:
                query = query.where(t.c.at >= start)
            rows = conn.execute(query.order_by(t.c.at, t.c.id)).all()
        return [HistorySample(r.at, r.increment, r.server_id or "", r.keyspace_hits,
                              r.keyspace_misses) for r in rows]

    def restarts(self, target: str, window: QuotaWindow) -> list[RestartNote]:
        """The restarts in ``window`` whose unseen commands were estimated, and how many.

        Reads the window's reset rows (a handful at most) and, for each, the sample
        before it, to tell a restart (its start time) from ``CONFIG RESETSTAT``.
        """
        t = redis_samples
        notes: list[RestartNote] = []
        with self.timeline.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.target == target, t.c.counted.is_(True),
                                   t.c.reset.is_(True), t.c.at >= window.start,
                                   t.c.at < window.end,
                                   t.c.increment > t.c.total_commands)
                .order_by(t.c.at)).all()
            for row in rows:
                prev = conn.execute(
                    sa.select(t).where(t.c.target == target, t.c.counted.is_(True),
                                       t.c.at < row.at)
                    .order_by(t.c.at.desc(), t.c.id.desc()).limit(1)).first()
                if prev is None:
                    continue
                when = restart_time(_sample(prev), _sample(row))
                if when is not None:
                    notes.append(RestartNote(when, row.increment - row.total_commands))
        return notes

    def _lock(self, conn: Connection, target: str) -> None:
        # SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE).
        if self.timeline.lock_rows():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                         {"k": f"alert_jobs.redis:{target}"})

    def _current_window(self, conn: Connection, target: str,
                        window_start: datetime) -> WindowUsage | None:
        """This window's usage; else the most recently counted window (a rollover).

        Looking up by the current start, not the latest start, keeps counting right
        when a quota's window or timezone changes (a month starts before today).
        """
        t = redis_windows
        row = conn.execute(sa.select(t).where(t.c.target == target,
                                              t.c.window_start == window_start)).first()
        if row is None:
            row = conn.execute(sa.select(t).where(t.c.target == target)
                               .order_by(t.c.last_at.desc()).limit(1)).first()
        if row is None:
            return None
        last = CounterSample(row.last_at, row.last_total, row.last_server_id, row.last_uptime)
        return WindowUsage(row.window_start, row.used, row.partial, last, row.resets)

    def _save_window(self, conn: Connection, target: str, window: QuotaWindow,
                     usage: WindowUsage) -> None:
        t = redis_windows
        values: dict[str, Any] = {
            "window_end": window.end, "window_kind": window.kind, "used": usage.used,
            "partial": usage.partial, "resets": usage.resets, "last_at": usage.last.at,
            "last_total": usage.last.total, "last_server_id": usage.last.server_id,
            "last_uptime": usage.last.uptime_seconds, "updated_at": datetime.now(UTC),
        }
        key = (t.c.target == target) & (t.c.window_start == usage.window_start)
        if conn.execute(sa.update(t).where(key).values(**values)).rowcount == 0:
            conn.execute(t.insert().values(target=target, window_start=usage.window_start,
                                           **values))


def _sample(row: Any) -> CounterSample:
    return CounterSample(row.at, row.total_commands, row.server_id, row.uptime_seconds)
