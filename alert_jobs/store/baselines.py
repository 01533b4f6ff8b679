"""Baseline state in the timeline database: backfilled points and adopted level shifts.

The live history of a baseline rule is its own evaluations (``alert_evaluations``, the
timeline stores every one with its value); this module adds what evaluations cannot
hold:

* ``alert_baseline_points``: values a new rule computed for windows *before* its first
  evaluation (the backfill), so it has a baseline on its first day. They never overlap
  its evaluations (a backfill only covers times before ``backfill_before``).
* ``alert_baselines``: per alert instance (fingerprint), the adopted level shifts and
  the backfill's progress.

:meth:`BaselineStore.read` gets what one evaluation needs in one statement (``UNION
ALL`` of range scans on ``(rule, at)`` and ``(fingerprint, at)``): the slot's points
from both tables, leaving out evaluations that were alerting (except those of an
adopted shift's streak), and the evaluations of the last hours with what was expected
then (today's level, :func:`alert_jobs.core.baseline.level_of`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from alert_jobs.core.baseline import Point, Recent, Shift
from alert_jobs.store import schema
from alert_jobs.store.db import Database, upsert
from alert_jobs.store.rawsql import bind_time_for, fetch_all, read_any_time

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
    # [{"since": iso, "adopted_at": iso, "offset": float, "factor": float}, …], oldest
    # first (shifts stored before factors existed have none: factor 1)
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



# ----- the history statement: plain SQL built once per shape, run on the driver ----------
#
# Every evaluation of a baseline rule reads its slot (hour_of_week over 28 days: 4 ranges,
# ~48 rows). Through SQLAlchemy, building and compiling the statement costs more CPU than
# the database spends on the range scans, so (as the SLO store's edge read) the SQL text
# is made once per (ranges, shifts, dialect) and run on the DB-API cursor; PostgreSQL
# prepares it once per connection. The OR of ``rule = ? AND at`` range terms is one index
# range scan per range on both databases (SQLite: MULTI-INDEX OR on
# ``ix_alert_evaluations_rule_at``; PostgreSQL: a BitmapOr), and the backfilled points
# use their key ``(fingerprint, at)`` the same way (tests/store/test_baselines.py checks
# both plans).


@functools.cache
def _history_sql(ranges: int, shifts: int, dialect: str, recent: bool = False) -> str:
    def p(name: str) -> str:
        return f"%({name})s" if dialect == "postgresql" else f":{name}"

    def within(key: str, param: str) -> str:
        # The key's equality inside every OR term: SQLite plans each term as its own
        # index range (MULTI-INDEX OR); with ``key = ?`` outside the OR it seeks on the
        # key alone and filters the rule's whole history (80 times slower at 28 days).
        return " OR ".join(f"({key} = {p(param)} AND at >= {p(f's{i}')} AND at < {p(f'e{i}')})"
                           for i in range(ranges))

    kept = " OR ".join(["status <> 'alert'"] + [
        f"(at >= {p(f'a{i}')} AND at <= {p(f'b{i}')})" for i in range(shifts)])
    nothing = ", NULL, NULL" if dialect != "postgresql" else \
        ", CAST(NULL AS DOUBLE PRECISION), CAST(NULL AS VARCHAR)"
    sql = (f"SELECT 0, at, value{nothing} FROM {schema.evaluations.name} "
           f"WHERE ({within('rule', 'rule')}) AND fingerprint = {p('fp')} "
           f"AND value IS NOT NULL AND ({kept}) "
           f"UNION ALL SELECT 0, at, value{nothing} FROM {baseline_points.name} "
           f"WHERE ({within('fingerprint', 'fp')}) AND value IS NOT NULL")
    return f"{sql} UNION ALL {_recent_sql(dialect)}" if recent else sql


@functools.cache
def _recent_sql(dialect: str) -> str:
    """The evaluations of ``[rs, re)`` with the expected value they were judged with."""
    if dialect == "postgresql":
        expected = "CAST(details ->> 'expected_value' AS DOUBLE PRECISION)"
        p = "%({})s".format
    else:
        expected = "json_extract(details, '$.expected_value')"
        p = ":{}".format
    return (f"SELECT 1, at, value, {expected}, status FROM {schema.evaluations.name} "
            f"WHERE rule = {p('rule')} AND at >= {p('rs')} AND at < {p('re')} "
            f"AND fingerprint = {p('fp')} AND value IS NOT NULL")


def _recent(row: Sequence[Any]) -> Recent:
    _, at, value, expected, status = row
    ok = expected is not None and math.isfinite(float(expected))
    return Recent(read_any_time(at), float(value), float(expected) if ok else None,
                  status == "alert")


@dataclass(frozen=True)
class Read:
    """What one baseline evaluation reads: the slot's points and the recent evaluations."""

    points: list[Point]
    recent: list[Recent]


# ----- state rows --------------------------------------------------------------------

_IN_CHUNK = 500  # fingerprints per IN list (well inside every driver's parameter limit)
_WRITE_CHUNK = 1_000  # backfilled points per INSERT

_b = baselines
_SELECT_STATES = sa.select(_b).where(_b.c.fingerprint.in_(sa.bindparam("fps", expanding=True)))


def _shift_json(shift: Shift) -> dict[str, Any]:
    return {"since": shift.since.astimezone(UTC).isoformat(),
            "adopted_at": shift.adopted_at.astimezone(UTC).isoformat(),
            "offset": float(shift.offset), "factor": float(shift.factor)}


def _shift(data: dict[str, Any]) -> Shift:
    return Shift(since=read_any_time(data["since"]), adopted_at=read_any_time(data["adopted_at"]),
                 offset=float(data.get("offset", 0.0)),
                 factor=float(data.get("factor", 1.0)))


def _state(row: Any) -> BaselineState:
    return BaselineState(fingerprint=row.fingerprint, rule=row.rule,
                         shifts=tuple(_shift(s) for s in row.shifts or ()),
                         backfill_before=row.backfill_before,
                         backfill_done=int(row.backfill_done or 0),
                         backfill_total=int(row.backfill_total or 0))


def _upsert(dialect: str) -> Any:
    """``INSERT … ON CONFLICT (fingerprint) DO UPDATE`` every other column."""
    return upsert(dialect, baselines, "fingerprint")


class BaselineStore:
    """Reads and writes of baseline history and state (``timeline.baselines``)."""

    def __init__(self, db: Database):
        self.db = db

    # ----- reads ---------------------------------------------------------------------

    def history(self, rule: str, fingerprint: str, ranges: Sequence[tuple[datetime, datetime]],
                shifts: Sequence[Shift] = ()) -> list[Point]:
        """The points in ``ranges`` (UTC ``[start, end)``), in one statement: the rule's
        evaluations of ``fingerprint`` with a value whose status was not ``alert`` (or
        whose time lies in an adopted shift's ``[since, adopted_at]``), plus the
        backfilled points with a value. Any order."""
        return self.read(rule, fingerprint, ranges, shifts).points

    def read(self, rule: str, fingerprint: str, ranges: Sequence[tuple[datetime, datetime]],
             shifts: Sequence[Shift] = (), recent: tuple[datetime, datetime] | None = None
             ) -> Read:
        """:meth:`history`, and with ``recent`` = ``(start, end)`` the evaluations of
        ``fingerprint`` in it (any status, with the expected value they were judged
        with), in one statement."""
        if not ranges and recent is None:
            return Read([], [])
        with self.db.read() as conn:
            dialect = conn.dialect.name
            params: dict[str, Any] = {"rule": rule, "fp": fingerprint}
            for i, (start, end) in enumerate(ranges):
                params[f"s{i}"] = bind_time_for(start, dialect)
                params[f"e{i}"] = bind_time_for(end, dialect)
            for i, shift in enumerate(shifts):
                params[f"a{i}"] = bind_time_for(shift.since, dialect)
                params[f"b{i}"] = bind_time_for(shift.adopted_at, dialect)
            if recent is not None:
                params["rs"], params["re"] = (bind_time_for(t, dialect) for t in recent)
            if ranges:
                sql = _history_sql(len(ranges), len(shifts), dialect, recent is not None)
            else:
                sql = _recent_sql(dialect)
            rows = fetch_all(conn, sql, params)
        return Read([Point(read_any_time(r[1]), float(r[2])) for r in rows if r[0] == 0],
                    [_recent(r) for r in rows if r[0] == 1])

    def recent(self, rule: str, fingerprint: str, start: datetime, end: datetime
               ) -> list[Recent]:
        """The evaluations of ``fingerprint`` in ``[start, end)`` with a value, with the
        expected value each was judged with (what an adoption weighs)."""
        return self.read(rule, fingerprint, (), recent=(start, end)).recent

    def states(self, fingerprints: Sequence[str]) -> dict[str, BaselineState]:
        """The stored state of each given fingerprint that has one (one query)."""
        wanted = list(dict.fromkeys(fingerprints))
        out: dict[str, BaselineState] = {}
        if not wanted:
            return out
        with self.db.read() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):  # one query up to 500 of them
                rows = conn.execute(_SELECT_STATES, {"fps": wanted[start:start + _IN_CHUNK]})
                out.update((row.fingerprint, _state(row)) for row in rows)
        return out

    def stored_times(self, fingerprint: str, start: datetime, end: datetime) -> set[datetime]:
        """The times of the backfilled points of ``fingerprint`` in ``[start, end)``, with
        or without a value (what a backfill has already computed)."""
        p = baseline_points
        with self.db.read() as conn:
            return set(conn.execute(sa.select(p.c.at).where(
                p.c.fingerprint == fingerprint, p.c.at >= start, p.c.at < end)).scalars())

    def first_evaluation(self, rule: str, fingerprint: str, since: datetime) -> datetime | None:
        """The time of the rule's first evaluation of ``fingerprint`` with a value since
        ``since`` (a rule that gains a baseline has history already: the backfill stops
        there, so its points and the evaluations never overlap)."""
        e = schema.evaluations
        with self.db.read() as conn:
            return conn.execute(sa.select(sa.func.min(e.c.at)).where(
                e.c.rule == rule, e.c.at >= since, e.c.fingerprint == fingerprint,
                e.c.value.is_not(None))).scalar()

    # ----- writes --------------------------------------------------------------------

    def save(self, state: BaselineState, now: datetime) -> None:
        """Insert or replace ``state`` (one short transaction)."""
        row = {"fingerprint": state.fingerprint, "rule": state.rule,
               "shifts": [_shift_json(s) for s in state.shifts],
               "backfill_before": state.backfill_before,
               "backfill_done": state.backfill_done, "backfill_total": state.backfill_total,
               "updated_at": now}
        stmt = _upsert(self.db.dialect)
        with self.db.tx() as conn:
            conn.execute(stmt, row)

    def add_points(self, rule: str, fingerprint: str,
                   points: Sequence[tuple[datetime, float | None]]) -> int:
        """Store backfilled values; a time already stored is skipped (idempotent, so a
        schedule tick and a manual run backfilling at once store each point once).
        Returns how many were new."""
        rows = list({at: {"fingerprint": fingerprint, "at": at, "rule": rule,
                          "value": None if value is None or not math.isfinite(value)
                          else float(value)}
                     for at, value in points}.values())
        if not rows:
            return 0
        # ON CONFLICT DO NOTHING on the key: a point another run stored meanwhile is
        # skipped by the database, not by a read-then-write race. RETURNING counts only
        # the rows this statement inserted.
        stmt = self.db.insert_ignore(baseline_points, ["fingerprint", "at"]).returning(
            baseline_points.c.at)
        new = 0
        with self.db.tx() as conn:
            for start in range(0, len(rows), _WRITE_CHUNK):
                new += len(conn.execute(stmt, rows[start:start + _WRITE_CHUNK]).all())
        return new

    def forget(self, rule: str) -> int:
        """Delete a rule's backfilled points and state (``rules reset``-style); the
        evaluations stay. Returns rows deleted."""
        # The points have no index on rule (their key is fingerprint, at): a rare
        # operator action may scan them.
        with self.db.tx() as conn:
            points = conn.execute(baseline_points.delete().where(
                baseline_points.c.rule == rule)).rowcount or 0
            states = conn.execute(baselines.delete().where(baselines.c.rule == rule)
                                  ).rowcount or 0
        return int(points) + int(states)

    def trim(self, before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` backfilled points older than ``before`` (retention)."""
        p = baseline_points
        oldest = (sa.select(p.c.fingerprint, p.c.at).where(p.c.at < before).limit(limit)
                  .subquery())
        with self.db.tx() as conn:
            result = conn.execute(p.delete().where(sa.tuple_(p.c.fingerprint, p.c.at).in_(
                sa.select(oldest.c.fingerprint, oldest.c.at))))
            return int(result.rowcount or 0)
