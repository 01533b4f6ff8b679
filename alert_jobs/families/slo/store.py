"""Per-bucket good/total counts of each SLO, in the timeline database (like recording
rules): a 30-day window is a difference of two running totals, not a 30-day scan.

Each row is one bucket ``[start, end)`` of one rule and carries running totals
(``cum_good``, ``cum_total``, ``cum_covered`` = seconds of buckets with data) up to and
including itself. The counts of any window are then the totals at its end minus those
at its start, where the total at a time ``t`` is read from the first bucket ending
after ``t``, prorated when that bucket straddles ``t``: one indexed lookup per window
edge, whatever the window's length, all in one statement.

Only differences of running totals mean anything, so:

* deleting old rows (:meth:`SloBucketStore.trim`) leaves the rest valid;
* a backfill may add older buckets *before* the oldest stored one
  (:meth:`SloBucketStore.prepend`, running totals counted backwards, possibly below
  zero): the newest buckets are read first, so a new SLO's short windows are known at
  its first run while its older history arrives over the next runs;
* a gap between two rows (nothing stored for it) counts as no events and no coverage.

Writes are idempotent: a bucket that starts before the newest stored end (or, when
prepending, ends after the oldest stored start) is skipped. Every write is one
transaction that holds the rule's lock (SQLite: the write lock every transaction takes;
PostgreSQL: an advisory transaction lock per rule), so a schedule tick and a manual run
of the same SLO cannot count a bucket twice.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.families.slo.check import Bucket, Counts
from alert_jobs.store import Timeline, schema
from alert_jobs.store.rawsql import bind_time_for, fetch_all, read_any_time

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

_T = slo_buckets
_EDGE = (_T.c.start, _T.c.end, _T.c.good, _T.c.total, _T.c.has_data, _T.c.cum_good,
         _T.c.cum_total, _T.c.cum_covered)


@dataclass(frozen=True)
class Extent:
    """The stored buckets of one rule: the oldest start and the newest end."""

    first_start: datetime
    last_end: datetime
    newest: Bucket


@dataclass(frozen=True)
class _Totals:
    good: float
    total: float
    covered: float  # seconds

    def minus(self, other: _Totals, span: timedelta) -> Counts:
        # Differences of sums of whole counts are exact; a prorated edge may leave a
        # rounding crumb below zero, which is no event at all.
        return Counts(span=span, good=max(0.0, self.good - other.good),
                      total=max(0.0, self.total - other.total),
                      covered=timedelta(seconds=max(0.0, self.covered - other.covered)))


def _covered(bucket: Bucket) -> float:
    return (bucket.end - bucket.start).total_seconds() if bucket.has_data else 0.0


def _totals_at(at: datetime, row: Any | None, newest: Any | None) -> _Totals:
    """Running totals at time ``at``, from ``row`` (the first bucket ending after ``at``)
    or, when no bucket ends after it, the newest bucket's."""
    if row is None:
        if newest is None:
            return _Totals(0.0, 0.0, 0.0)
        return _Totals(newest.cum_good, newest.cum_total, newest.cum_covered)
    length = (row.end - row.start).total_seconds()
    after = (row.end - at).total_seconds()  # the part of the bucket after `at`
    share = min(1.0, max(0.0, after / length)) if length > 0 else 1.0
    covered = length if row.has_data else 0.0
    return _Totals(row.cum_good - share * row.good, row.cum_total - share * row.total,
                   row.cum_covered - share * covered)


def _bucket(row: Any) -> Bucket:
    return Bucket(start=row.start, end=row.end, good=row.good, total=row.total,
                  has_data=bool(row.has_data))


def _check(bucket: Bucket) -> None:
    """Counts are checked where a bucket is made (:class:`Bucket`); times here: a naive
    time would be read back shifted by the server's offset."""
    if bucket.start.tzinfo is None or bucket.end.tzinfo is None:
        raise ValueError(f"bucket {bucket.start} – {bucket.end}: SLO buckets need aware "
                         "UTC times")


_COLUMNS = 'start, "end", good, total, has_data, cum_good, cum_total, cum_covered'


class _Edge(NamedTuple):
    """One row of the edge statement: ``k`` = -1 for the newest bucket, else the edge."""

    k: int
    start: datetime
    end: datetime
    good: float
    total: float
    has_data: bool
    cum_good: float
    cum_total: float
    cum_covered: float


@functools.cache
def _edges_sql(edges: int, dialect: str) -> str:
    """The newest bucket (``k = -1``) and, for each edge ``e<i>``, the first bucket ending
    after it (``k = i``), each one primary-key seek, in the driver's parameter style.
    Plain SQL built once per number of edges and run on the driver's cursor: an
    evaluation every minute for every SLO must not pay for building and compiling it."""
    def p(name: str) -> str:
        return f"%({name})s" if dialect == "postgresql" else f":{name}"

    parts = [f'SELECT -1 AS k, {_COLUMNS} FROM (SELECT {_COLUMNS} FROM alert_slo_buckets '
             f'WHERE rule = {p("rule")} ORDER BY "end" DESC LIMIT 1) AS n']
    parts += [f'SELECT {i} AS k, {_COLUMNS} FROM (SELECT {_COLUMNS} FROM alert_slo_buckets '
              f'WHERE rule = {p("rule")} AND "end" > {p(f"e{i}")} ORDER BY "end" LIMIT 1) '
              f'AS s{i}' for i in range(edges)]
    return " UNION ALL ".join(parts)


def _edge_rows(conn: Connection, rule: str, edges: Sequence[datetime]) -> dict[int, _Edge]:
    dialect = conn.dialect.name
    params: dict[str, Any] = {"rule": rule}
    params.update((f"e{i}", bind_time_for(edge, dialect)) for i, edge in enumerate(edges))
    rows = fetch_all(conn, _edges_sql(len(edges), dialect), params)  # PostgreSQL: prepared
    return {int(r[0]): _Edge(int(r[0]), read_any_time(r[1]), read_any_time(r[2]), float(r[3]),
                             float(r[4]), bool(r[5]), float(r[6]), float(r[7]), float(r[8]))
            for r in rows}


def _checked(buckets: Sequence[Bucket], *, newest_first: bool) -> list[Bucket]:
    """``buckets`` in the order they are written, each checked before anything is."""
    ordered = sorted(buckets, key=lambda b: b.start, reverse=newest_first)
    for bucket in ordered:
        _check(bucket)
    return ordered


def _stored_edge(conn: Connection, rule: str, *, newest: bool) -> Any:
    """The rule's newest (or oldest) stored row, read under its lock; None: none."""
    order = _T.c.end.desc() if newest else _T.c.end
    return conn.execute(sa.select(*_EDGE).where(_T.c.rule == rule).order_by(order)
                        .limit(1)).first()


class SloBucketStore:
    """The buckets of every SLO rule in one timeline database."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    # ----- reads ---------------------------------------------------------------------

    def last_end(self, rule: str) -> datetime | None:
        """End of the rule's newest stored bucket (None: the rule needs its backfill)."""
        extent = self.extent(rule)
        return extent.last_end if extent else None

    def extent(self, rule: str) -> Extent | None:
        """The oldest start and newest end of the rule's buckets (None: none stored), in
        one statement (two index seeks)."""
        oldest = (sa.select(sa.literal(0).label("k"), *_EDGE).where(_T.c.rule == rule)
                  .order_by(_T.c.end).limit(1).subquery())
        newest = (sa.select(sa.literal(1).label("k"), *_EDGE).where(_T.c.rule == rule)
                  .order_by(_T.c.end.desc()).limit(1).subquery())
        stmt = sa.union_all(sa.select(oldest), sa.select(newest))
        with self.timeline.read() as conn:
            rows = {row.k: row for row in conn.execute(stmt)}
        if not rows:
            return None
        return Extent(first_start=rows[0].start, last_end=rows[1].end,
                      newest=_bucket(rows[1]))

    def window_counts(self, rule: str, spans: Sequence[timedelta], *,
                      end: datetime | None = None) -> dict[timedelta, Counts]:
        """Counts of each window ``[end − span, end)`` (``end``: the newest bucket's end),
        in one read: one statement that finds, for each window edge, the first bucket
        ending after it (plus the newest bucket), by the primary key. (Without ``end``,
        a first statement finds the newest bucket.)"""
        if end is None:
            with self.timeline.read() as conn:
                newest = _edge_rows(conn, rule, []).get(-1)
            if newest is None:
                return {span: Counts(span, 0.0, 0.0, timedelta(0)) for span in spans}
            end = newest.end
        return self.window_counts_many([(rule, spans, end)])[0]

    def window_counts_many(self, wanted: Sequence[tuple[str, Sequence[timedelta], datetime]]
                           ) -> list[dict[timedelta, Counts]]:
        """:meth:`window_counts` of several rules, ``(rule, spans, end)`` each, on one
        connection: a batch run of many SLOs pays for one checkout, not one per SLO."""
        out = []
        with self.timeline.read() as conn:
            for rule, spans, end in wanted:
                edges = [end, *(end - span for span in spans)]
                rows = _edge_rows(conn, rule, edges)
                newest_row = rows.get(-1)
                at_end = _totals_at(edges[0], rows.get(0), newest_row)
                out.append({span: at_end.minus(_totals_at(edges[i], rows.get(i), newest_row),
                                               span)
                            for i, span in enumerate(spans, start=1)})
        return out

    def series(self, rule: str, start: datetime, end: datetime) -> list[Bucket]:
        """The stored buckets ending inside ``(start, end]``, oldest first (reports)."""
        with self.timeline.read() as conn:
            rows = conn.execute(sa.select(*_EDGE).where(
                _T.c.rule == rule, _T.c.end > start, _T.c.end <= end).order_by(_T.c.end))
            return [_bucket(row) for row in rows]

    def rules(self) -> list[str]:
        """Every rule with stored buckets (to find buckets of rules no longer in the file)."""
        with self.timeline.read() as conn:
            return list(conn.execute(sa.select(_T.c.rule).distinct().order_by(_T.c.rule))
                        .scalars())

    # ----- writes --------------------------------------------------------------------

    def append(self, rule: str, buckets: Sequence[Bucket], *, run_id: str | None = None
               ) -> int:
        """Store ``buckets`` (in time order, each starting at or after the newest stored
        end) with their running totals; buckets already stored are skipped. Returns how
        many were new."""
        ordered = _checked(buckets, newest_first=False)
        if not ordered:
            return 0
        with self.timeline.tx() as conn:
            self._lock(conn, rule)
            last = _stored_edge(conn, rule, newest=True)
            return self._append_locked(conn, rule, ordered, run_id, last)

    def prepend(self, rule: str, buckets: Sequence[Bucket], *, run_id: str | None = None
                ) -> int:
        """Store older ``buckets`` before the oldest stored one (a backfill read newest
        first), running totals counted backwards from it; buckets that end after the
        oldest stored start are skipped. With nothing stored yet, this is
        :meth:`append`. Returns how many were new."""
        ordered = _checked(buckets, newest_first=True)
        if not ordered:
            return 0
        with self.timeline.tx() as conn:
            self._lock(conn, rule)
            first = _stored_edge(conn, rule, newest=False)
            if first is None:
                return self._append_locked(conn, rule, ordered[::-1], run_id, None)
            # The running totals just before the oldest stored bucket.
            good = first.cum_good - (first.good if first.has_data else 0.0)
            total = first.cum_total - (first.total if first.has_data else 0.0)
            covered = first.cum_covered - _covered(_bucket(first))
            first_start = first.start
            rows = []
            for bucket in ordered:  # newest first
                if bucket.end > first_start:
                    continue
                rows.append(self._row(rule, bucket, good, total, covered, run_id))
                good -= bucket.good if bucket.has_data else 0.0
                total -= bucket.total if bucket.has_data else 0.0
                covered -= _covered(bucket)
                first_start = bucket.start
            if rows:
                conn.execute(_T.insert(), rows)
        return len(rows)

    def _append_locked(self, conn: Connection, rule: str, ordered: Sequence[Bucket],
                       run_id: str | None, last: Any | None) -> int:
        """Insert ``ordered`` after ``last`` (the newest stored row, or None)."""
        last_end = last.end if last is not None else None
        good, total, covered = ((last.cum_good, last.cum_total, last.cum_covered)
                                if last is not None else (0.0, 0.0, 0.0))
        rows = []
        for bucket in ordered:
            if last_end is not None and bucket.start < last_end:
                continue
            good += bucket.good if bucket.has_data else 0.0
            total += bucket.total if bucket.has_data else 0.0
            covered += _covered(bucket)
            rows.append(self._row(rule, bucket, good, total, covered, run_id))
            last_end = bucket.end
        if rows:
            conn.execute(_T.insert(), rows)
        return len(rows)

    @staticmethod
    def _row(rule: str, bucket: Bucket, good: float, total: float, covered: float,
             run_id: str | None) -> dict[str, Any]:
        return {"rule": rule, "start": bucket.start, "end": bucket.end,
                "good": float(bucket.good) if bucket.has_data else 0.0,
                "total": float(bucket.total) if bucket.has_data else 0.0,
                "has_data": bucket.has_data, "cum_good": good, "cum_total": total,
                "cum_covered": covered, "run_id": run_id}

    def trim(self, rule: str, before: datetime) -> int:
        """Delete buckets ending before ``before`` (retention: keep at least the period)
        without breaking the running totals of the rest (only their differences are
        read). The newest bucket is always kept: it says where the next run goes on."""
        with self.timeline.tx() as conn:
            self._lock(conn, rule)
            newest = conn.execute(sa.select(sa.func.max(_T.c.end)).where(_T.c.rule == rule)
                                  ).scalar()
            if newest is None:
                return 0
            result = conn.execute(_T.delete().where(_T.c.rule == rule, _T.c.end < before,
                                                    _T.c.end < newest))
            return int(result.rowcount or 0)

    def forget(self, rule: str) -> int:
        """Delete every bucket of ``rule`` (its source or SLI changed: read it again)."""
        with self.timeline.tx() as conn:
            self._lock(conn, rule)
            return int(conn.execute(_T.delete().where(_T.c.rule == rule)).rowcount or 0)

    def _lock(self, conn: Connection, rule: str) -> None:
        # SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE).
        if self.timeline.lock_rows():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                         {"k": f"alert_jobs.slo:{rule}"})
