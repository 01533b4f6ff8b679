"""The SQL source of SLO counts, on real SQLite and PostgreSQL: one query per bucket with
``:window_start``/``:window_end``, ``good, total`` or ``bad, total``, gaps versus zero
traffic, and bad input (wrong columns, impossible counts, unreachable database, a query
that runs too long) as clear :class:`SourceError` messages without secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alert_jobs.core.errors import SourceError
from alert_jobs.families.slo.config import SqlSli
from alert_jobs.families.slo.source import bucket_edges, sql_buckets
from alert_jobs.runtime.sql_source import engine_for

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

GOOD_TOTAL = """
SELECT sum(CASE WHEN status < 500 THEN 1 ELSE 0 END) AS good, count(*) AS total
FROM requests WHERE at >= :window_start AND at < :window_end"""
BAD_TOTAL = """
SELECT count(*) FILTER (WHERE status >= 500) AS bad, count(*) AS total
FROM requests WHERE at >= :window_start AND at < :window_end"""


def seed(url: str) -> None:
    """Requests at 12:00:10 (2, one failed), 12:01:59 (1 ok), none in 12:02, 12:03:00
    (3 failed)."""
    engine = sa.create_engine(url)
    kind = "TEXT" if url.startswith("sqlite") else "TIMESTAMPTZ"
    rows = [("12:00:10", 200), ("12:00:10", 503), ("12:01:59", 200), ("12:03:00", 500),
            ("12:03:00", 500), ("12:03:00", 502)]
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE requests (at {kind}, status INTEGER)"))
        for at, status in rows:
            when = f"2026-03-01 {at}" if kind == "TEXT" else \
                datetime.fromisoformat(f"2026-03-01T{at}+00:00")
            conn.execute(sa.text("INSERT INTO requests VALUES (:at, :s)"),
                         {"at": when, "s": status})
    engine.dispose()


def sli(database: str, query: str, timeout: str = "30s") -> SqlSli:
    return SqlSli.model_validate({"database": database, "query": query,
                                  "query_timeout": timeout})


def test_good_total_per_bucket_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    seed(url)
    got = sql_buckets(sli(url, GOOD_TOTAL), T0, T0 + 4 * MIN, MIN)
    assert [(b.start, b.end) for b in got] == bucket_edges(T0, T0 + 4 * MIN, MIN)
    assert [(b.good, b.total, b.has_data) for b in got] == [
        (1, 2, True), (1, 1, True), (0, 0, True), (0, 3, True)]  # 12:02: no traffic, data


def test_bad_total_on_postgresql(pg_url: str) -> None:
    seed(pg_url)
    got = sql_buckets(sli(pg_url, BAD_TOTAL), T0, T0 + 4 * MIN, 2 * MIN)
    assert [(b.good, b.total) for b in got] == [(2, 3), (0, 3)]


def test_null_total_or_no_row_is_a_gap_not_zero_traffic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    seed(url)
    gap_when_empty = ("SELECT sum(CASE WHEN status < 500 THEN 1 ELSE 0 END) AS good, "
                      "CASE WHEN count(*) > 0 THEN count(*) END AS total FROM requests "
                      "WHERE at >= :window_start AND at < :window_end")
    got = sql_buckets(sli(url, gap_when_empty), T0, T0 + 4 * MIN, MIN)
    assert [b.has_data for b in got] == [True, True, False, True]
    no_row = "SELECT 1 AS good, 1 AS total WHERE :window_start > '2030'"
    assert [b.has_data for b in sql_buckets(sli(url, no_row), T0, T0 + MIN, MIN)] == [False]


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT 1 AS ok, 2 AS total", "returned the columns ok, total; it must return one row "
                                   "with columns named good, total or bad, total"),
    ("SELECT 1 AS good, 1 AS bad, 2 AS total", "columns named good, total or bad, total"),
    ("SELECT 5 AS good, 3 AS total", "more good events than events in total"),
    ("SELECT 4 AS bad, 3 AS total", "must not be negative"),
    ("SELECT 'many' AS good, 3 AS total", "returned str 'many' as good, not a number"),
    ("SELECT good, total FROM nowhere", "failed: no such table: nowhere"),
])
def test_bad_answers_are_clear_source_errors(tmp_path: Path, query: str, message: str) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    with pytest.raises(SourceError, match='query "SELECT') as caught:
        sql_buckets(sli(url, query), T0, T0 + MIN, MIN)
    assert message in str(caught.value)


def test_an_unreachable_database_is_named_without_its_password() -> None:
    url = "postgresql://slo:hunter2@127.0.0.1:1/app?sslmode=disable"
    with pytest.raises(SourceError) as caught:
        sql_buckets(sli(url, GOOD_TOTAL, "3s"), T0, T0 + MIN, MIN)
    text = str(caught.value)
    assert "hunter2" not in text and "127.0.0.1:1/app" in text and "***" in text
    assert 'query "SELECT sum(CASE WHEN status < 500 THEN 1 ELSE 0 END) AS good, count(*) ' \
           'AS total"' in text  # the query's first line names which SLI it was


def test_a_query_that_runs_too_long_times_out(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
            "SELECT count(*) AS good, count(*) AS total FROM n")
    started = datetime.now(UTC)
    with pytest.raises(SourceError, match=r"timed out after 1 s"):
        sql_buckets(sli(url, slow, "1s"), T0, T0 + MIN, MIN)
    assert datetime.now(UTC) - started < timedelta(seconds=10)


def test_one_connection_and_one_query_per_bucket(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    seed(url)
    seen: list[object] = []
    engine = engine_for(url, 30)
    listener = lambda *a: seen.append(tuple(a[3]))  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        sql_buckets(sli(url, GOOD_TOTAL), T0, T0 + 3 * MIN, MIN)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert seen == [(f"2026-03-01 12:0{i}:00", f"2026-03-01 12:0{i + 1}:00") for i in range(3)]


def test_bucket_edges_need_whole_steps() -> None:
    assert bucket_edges(T0, T0, MIN) == []
    with pytest.raises(ValueError, match="not a whole number"):
        bucket_edges(T0, T0 + 90 * timedelta(seconds=1), MIN)
