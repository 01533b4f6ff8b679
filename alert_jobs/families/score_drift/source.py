"""Score tables behind any SQLAlchemy URL, aggregated inside the database.

One query per window: every row is given a bucket code in SQL (a fine-bin index, or
a negative code for NULL / NaN / ±inf / out-of-range scores) and the database
returns ``GROUP BY [segment,] [hour of week,] bucket`` with counts, sums, the count
above the high-score threshold and null counts of the feature columns. So at most
(segments × slots × bins) small rows leave the database, never the scores.

Bucketing is the rule documented in ``check.py``: PostgreSQL uses
``width_bucket`` (on the score cast to double precision, so a NUMERIC column takes
the same float path); SQLite uses ``CAST(((s - lo) / (hi - lo)) * bins AS INTEGER)``,
the same IEEE expression, truncated; other databases use ``FLOOR``. NaN compares
greater than everything in PostgreSQL, so it is caught before any range test; SQLite
stores NaN as NULL.

Identifiers come from the validated rules file and are quoted by SQLAlchemy; values
are bound parameters. Errors are :class:`SourceError` naming the table or column
(URL password masked).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alert_jobs.core.errors import SourceError
from alert_jobs.families.score_drift.check import (
    INF_CODE,
    NAN_CODE,
    NULL_CODE,
    OUT_OF_RANGE_CODE,
    BucketRow,
    Grid,
    Histogram,
    histogram_from_rows,
)
from alert_jobs.runtime.sql_source import db_reason
from alert_jobs.runtime.sql_source import engine_for as sql_engine_for
from alert_jobs.store.urls import safe_url

SEPARATOR = "|"
ALL_HOURS = -1
MAX_SEGMENTS = 1000
_FLOAT_MAX = 1.7976931348623157e308
# 1970-01-01 was a Thursday: hour 0 of the epoch is hour 72 of its week (Monday 00:00 = 0).
_EPOCH_HOUR_OF_WEEK = 72
SAMPLE_SEED = 20240601

log = logging.getLogger("alert_jobs.drift")


@dataclass(frozen=True)
class ScoreTable:
    """Where the scores are and which columns matter."""

    url: str
    table: str  # "scores" or "schema.scores"
    time_column: str
    score_column: str
    segment_columns: tuple[str, ...] = ()
    feature_columns: tuple[str, ...] = ()
    timeout: float = 60.0

    @property
    def where(self) -> str:
        return f"table {self.table} in {safe_url(self.url)}"


@dataclass(frozen=True)
class WindowSpec:
    """Which rows to summarise and how to split them."""

    start: datetime
    end: datetime
    segment: dict[str, str] | None = None  # only this segment
    by_segment: bool = False  # one histogram per segment
    by_hour_of_week: bool = False  # one histogram per UTC hour of the week
    sample_percent: float | None = None


def engine_for(url: str, timeout: float) -> Engine:
    """One engine per URL; PostgreSQL sessions run in UTC (naive timestamps are UTC)."""
    return sql_engine_for(url, timeout, utc_sessions=True)


def _table(src: ScoreTable) -> sa.TableClause:
    schema, _, name = src.table.rpartition(".")
    columns = [src.time_column, src.score_column, *src.segment_columns, *src.feature_columns]
    return sa.table(name, *(sa.column(c) for c in columns), schema=schema or None)


def bucket_expression(score: Any, grid: Grid, dialect: str) -> Any:
    """The SQL bucket code of ``score`` (see the module docstring for the rule)."""
    s = sa.cast(score, sa.Float(precision=53))
    lo = sa.literal(grid.lo, sa.Float)
    hi = sa.literal(grid.hi, sa.Float)
    if dialect == "postgresql":
        fine: Any = sa.func.width_bucket(s, lo, hi, sa.literal(grid.bins, sa.Integer)) - 1
        nan: Any = s == sa.literal_column("'NaN'::float8")
    else:
        scaled = ((s - lo) / sa.literal(grid.hi - grid.lo, sa.Float)) * sa.literal(
            float(grid.bins), sa.Float)
        fine = sa.cast(scaled, sa.Integer) if dialect == "sqlite" else sa.func.floor(scaled)
        nan = sa.false()  # no NaN outside PostgreSQL's floats (SQLite stores it as NULL)
    return sa.case(
        (s.is_(None), NULL_CODE),
        (nan, NAN_CODE),
        ((s > _FLOAT_MAX) | (s < -_FLOAT_MAX), INF_CODE),
        ((s < lo) | (s > hi), OUT_OF_RANGE_CODE),
        (s >= hi, grid.bins - 1),
        else_=fine,
    )


def _hour_of_week(column: Any, dialect: str) -> Any:
    hours: Any
    if dialect == "postgresql":
        hours = sa.cast(sa.func.floor(sa.extract("epoch", column) / 3600), sa.BigInteger)
        return sa.func.mod(hours + _EPOCH_HOUR_OF_WEEK, 168)
    if dialect == "sqlite":
        hours = sa.cast(sa.func.strftime("%s", column), sa.Integer) / 3600
        return (hours + _EPOCH_HOUR_OF_WEEK) % 168
    raise SourceError(f"seasonal references need PostgreSQL or SQLite (this is {dialect}); "
                      "use kind: fixed or pinned")


def _time_param(when: datetime, dialect: str) -> Any:
    """SQLite has no timestamp type: times are UTC text ``YYYY-MM-DD HH:MM:SS``."""
    if dialect != "sqlite":
        return when
    return (when.astimezone(UTC) if when.tzinfo else when).strftime("%Y-%m-%d %H:%M:%S")


def _value(value: str) -> Any:
    # No type: the driver sends it untyped, so it compares with text and integer columns.
    return sa.bindparam(None, value, type_=sa.types.NullType())


def _source_rows(src: ScoreTable, spec: WindowSpec, dialect: str) -> tuple[Any, Any]:
    """The table (sampled if asked) and the WHERE clause of a window."""
    t = _table(src)
    source: Any = t
    conditions = [t.c[src.time_column] >= _time_param(spec.start, dialect),
                  t.c[src.time_column] < _time_param(spec.end, dialect)]
    if spec.sample_percent is not None and spec.sample_percent < 100:
        if dialect == "postgresql":
            source = sa.tablesample(t, sa.func.system(spec.sample_percent), name="sampled",
                                    seed=sa.literal(SAMPLE_SEED))
            t = source
            conditions = [t.c[src.time_column] >= spec.start, t.c[src.time_column] < spec.end]
        elif dialect == "sqlite":
            conditions.append(sa.func.abs(sa.func.random()) % 1_000_000
                              < int(spec.sample_percent * 10_000))
        else:
            raise SourceError(f"sampling needs PostgreSQL or SQLite (this is {dialect})")
    if spec.segment:
        conditions += [t.c[c] == _value(v) for c, v in spec.segment.items()]
    if spec.by_segment:
        conditions += [t.c[c].is_not(None) for c in src.segment_columns]
    return source, sa.and_(*conditions)


def histogram_query(src: ScoreTable, grid: Grid, spec: WindowSpec, *, dialect: str,
                    threshold: float | None) -> sa.Select[Any]:
    """``SELECT [segments,] [slot,] code, count, sums, above, feature nulls … GROUP BY``."""
    source, where = _source_rows(src, spec, dialect)
    c = source.c
    score = sa.cast(c[src.score_column], sa.Float(precision=53))
    inner_cols: list[Any] = []
    keys: list[str] = []
    if spec.by_segment:
        for i, col in enumerate(src.segment_columns):
            inner_cols.append(c[col].label(f"g{i}"))
            keys.append(f"g{i}")
    if spec.by_hour_of_week:
        inner_cols.append(_hour_of_week(c[src.time_column], dialect).label("how"))
        keys.append("how")
    inner_cols.append(bucket_expression(c[src.score_column], grid, dialect).label("code"))
    keys.append("code")
    inner_cols.append(score.label("s"))
    above: Any = sa.literal(0)
    if threshold is not None:
        above = sa.case((score > sa.literal(threshold, sa.Float), 1), else_=0)
    inner_cols.append(above.label("hi"))
    for i, col in enumerate(src.feature_columns):
        inner_cols.append(sa.case((c[col].is_(None), 1), else_=0).label(f"f{i}"))
    inner = sa.select(*inner_cols).select_from(source).where(where).subquery("w")
    q = inner.c
    aggregates = [sa.func.count().label("n"), sa.func.sum(q.s).label("total"),
                  sa.func.sum(q.s * q.s).label("total_sq"), sa.func.sum(q.hi).label("above"),
                  *(sa.func.sum(q[f"f{i}"]).label(f"nf{i}")
                    for i in range(len(src.feature_columns)))]
    return sa.select(*(q[k] for k in keys), *aggregates).group_by(*(q[k] for k in keys))


@contextmanager
def _connection(src: ScoreTable) -> Iterator[tuple[Connection, str]]:
    engine = engine_for(src.url, src.timeout)
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            dialect = engine.dialect.name
            _apply_timeout(conn, dialect, src.timeout, started)
            yield conn, dialect
    except SourceError:
        raise
    except Exception as exc:
        if time.monotonic() - started >= src.timeout:
            raise SourceError(f"query on {src.where} timed out after {src.timeout:g} s"
                              ) from None
        raise SourceError(_diagnose(src, exc)) from None


def read_histograms(src: ScoreTable, grid: Grid, spec: WindowSpec, *,
                    threshold: float | None) -> dict[tuple[str, int], Histogram]:
    """Histograms keyed by (segment key, hour of week); ``("", -1)`` when not split."""
    fraction = (spec.sample_percent or 100.0) / 100.0
    groups: dict[tuple[str, int], list[BucketRow]] = defaultdict(list)
    with _connection(src) as (conn, dialect):
        query = histogram_query(src, grid, spec, dialect=dialect, threshold=threshold)
        n_seg = len(src.segment_columns) if spec.by_segment else 0
        nf = len(src.feature_columns)
        for row in conn.execute(query):
            values = tuple(row)
            segment = SEPARATOR.join(str(v) for v in values[:n_seg]) if n_seg else ""
            pos = n_seg
            slot = ALL_HOURS
            if spec.by_hour_of_week:
                slot = int(values[pos])
                pos += 1
            code = int(values[pos])
            n, total, total_sq, above = values[pos + 1:pos + 5]
            nulls = tuple(int(v or 0) for v in values[pos + 5:pos + 5 + nf])
            groups[(segment, slot)].append(BucketRow(code, int(n), _num(total),
                                                     _num(total_sq), int(above or 0), nulls))
    return {key: histogram_from_rows(rows, grid, threshold=threshold,
                                     features=src.feature_columns, sample_fraction=fraction)
            for key, rows in groups.items()}


def _num(value: Any) -> float:
    return 0.0 if value is None else float(value)


def discover_segments(src: ScoreTable, start: datetime, end: datetime) -> list[str]:
    """Distinct segment values seen in ``[start, end)``, as partition keys (sorted)."""
    if not src.segment_columns:
        return []
    with _connection(src) as (conn, dialect):
        t = _table(src)
        cols = [t.c[c] for c in src.segment_columns]
        query = (sa.select(*cols).distinct()
                 .where(t.c[src.time_column] >= _time_param(start, dialect),
                        t.c[src.time_column] < _time_param(end, dialect),
                        *(c.is_not(None) for c in cols))
                 .order_by(*cols).limit(MAX_SEGMENTS))
        rows = conn.execute(query).all()
    if len(rows) >= MAX_SEGMENTS:
        log.warning("%s has at least %d segments; only the first %d (in sort order) are "
                    "checked — are the segment columns right?", src.where, MAX_SEGMENTS,
                    MAX_SEGMENTS)
    return sorted(SEPARATOR.join(str(v) for v in row) for row in rows)


# The planner cannot estimate how many buckets a CASE yields, guesses one group per
# row, and with the default 4 MB picks sort + GroupAggregate, spilling to disk (240 ms
# instead of 30 ms for 60,000 rows). The hash table really holds at most
# segments × slots × bins small rows, so a larger budget is safe.
PG_WORK_MEM = "64MB"


def _apply_timeout(conn: Connection, dialect: str, seconds: float, started: float) -> None:
    if dialect == "postgresql":
        conn.exec_driver_sql(f"SET statement_timeout = {int(seconds * 1000)}")
        conn.exec_driver_sql(f"SET work_mem = '{PG_WORK_MEM}'")
    elif dialect == "sqlite":
        raw = conn.connection.driver_connection
        assert raw is not None
        deadline = started + seconds
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)


def _diagnose(src: ScoreTable, exc: BaseException) -> str:
    """Name the missing table or column when that is what went wrong."""
    reason = db_reason(exc)
    try:
        engine = engine_for(src.url, src.timeout)
        inspector = sa.inspect(engine)
        schema, _, name = src.table.rpartition(".")
        if not inspector.has_table(name, schema=schema or None):
            return f"table {src.table} not found in {safe_url(src.url)}"
        present = {c["name"] for c in inspector.get_columns(name, schema=schema or None)}
        wanted = [src.time_column, src.score_column, *src.segment_columns,
                  *src.feature_columns]
        missing = [c for c in wanted if c not in present]
        if missing:
            return (f"column(s) {', '.join(missing)} not found in {src.where} "
                    f"(it has: {', '.join(sorted(present))})")
    except Exception:  # the database is down: the first reason is the useful one
        pass
    return f"query on {src.where} failed: {reason}"


__all__ = ["ALL_HOURS", "INF_CODE", "NAN_CODE", "NULL_CODE", "OUT_OF_RANGE_CODE",
           "ScoreTable", "WindowSpec", "discover_segments", "read_histograms"]
