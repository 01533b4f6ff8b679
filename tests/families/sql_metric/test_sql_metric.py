"""The sql_metric check (pure) and its SQL source on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alert_jobs.config import parse_rules
from alert_jobs.core.formatting import fmt_number
from alert_jobs.core.model import Status
from alert_jobs.families.sql_metric.check import Bounds, judge
from alert_jobs.families.sql_metric.run import observe_sql_metric
from alert_jobs.families.sql_metric.source import SourceError, query_number

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("bounds", "value", "status", "summary"), [
    (Bounds(0, 0), 1000, Status.ALERT,
     "Expected dead letters to be 0 in the last 30 minutes, got 1,000"),
    (Bounds(0, 0), 0, Status.OK, "Expected dead letters to be 0 in the last 30 minutes, got 0"),
    (Bounds(max=10), 10, Status.OK,
     "Expected dead letters to be at most 10 in the last 30 minutes, got 10"),
    (Bounds(min=1), 0.5, Status.ALERT,
     "Expected dead letters to be at least 1 in the last 30 minutes, got 0.5"),
    (Bounds(1, 5), 6, Status.ALERT,
     "Expected dead letters to be between 1 and 5 in the last 30 minutes, got 6"),
    (Bounds(0, 0), None, Status.NODATA,
     "Expected dead letters to be 0 in the last 30 minutes, but the query returned no value "
     "(no row, or NULL)"),
    (Bounds(0, 0), float("nan"), Status.NODATA,
     "Expected dead letters to be 0 in the last 30 minutes, but the query returned NaN"),
])
def test_judge_sentences(bounds: Bounds, value: float | None, status: Status,
                         summary: str) -> None:
    obs = judge("dl", value, bounds, subject="dead letters", window="30 minutes")
    assert obs.status == status
    assert obs.summary == summary


def test_resolve_range_gives_hysteresis() -> None:
    bounds = Bounds(max=100, resolve_max=80)
    assert judge("r", 90, bounds, subject="x", window="1 hour").status == Status.OK
    firing = judge("r", 90, bounds, subject="x", window="1 hour", was_firing=True)
    assert firing.status == Status.ALERT and "not yet inside the resolve range" in firing.summary
    assert judge("r", 80, bounds, subject="x", window="1 hour", was_firing=True).status \
        == Status.OK


@pytest.mark.parametrize(("value", "text"), [
    (1000, "1,000"), (0, "0"), (0.25, "0.25"), (1234567.891, "1,234,567.9"), (None, "nothing"),
    (float("inf"), "infinity"),
])
def test_fmt_number(value: float | None, text: str) -> None:
    assert fmt_number(value) == text


@pytest.fixture(params=["sqlite", "postgresql"])
def data_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    engine = sa.create_engine(url)
    ts = "TEXT" if request.param == "sqlite" else "TIMESTAMPTZ"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE dead_letters (id INTEGER, created_at {ts})"))
        rows = [{"id": i, "created_at": (NOW - timedelta(minutes=i)) if request.param != "sqlite"
                 else (NOW - timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")}
                for i in range(60)]
        conn.execute(sa.text("INSERT INTO dead_letters VALUES (:id, :created_at)"), rows)
    engine.dispose()
    return url


def test_window_parameters_on_both_databases(data_url: str) -> None:
    query = ("SELECT count(*) FROM dead_letters "
             "WHERE created_at >= :window_start AND created_at < :window_end")
    value = query_number(data_url, query, window_start=NOW - timedelta(minutes=30),
                         window_end=NOW + timedelta(seconds=1), timeout=timedelta(seconds=5))
    assert value == 31.0  # minutes 0..30 inclusive of the start bound
    seconds = query_number(data_url, "SELECT :window_seconds", window_start=NOW - timedelta(
        minutes=30), window_end=NOW, timeout=timedelta(seconds=5))
    assert seconds == 1800.0


def test_no_row_and_null_are_none(data_url: str) -> None:
    kw = {"window_start": NOW, "window_end": NOW, "timeout": timedelta(seconds=5)}
    assert query_number(data_url, "SELECT id FROM dead_letters WHERE id < 0", **kw) is None
    assert query_number(data_url, "SELECT max(id) FROM dead_letters WHERE id < 0", **kw) is None


def test_missing_table_names_it(data_url: str) -> None:
    with pytest.raises(SourceError) as info:
        query_number(data_url, "SELECT count(*) FROM missing_table", window_start=NOW,
                     window_end=NOW, timeout=timedelta(seconds=5))
    assert "missing_table" in str(info.value)


def test_text_result_is_refused(data_url: str) -> None:
    with pytest.raises(SourceError, match="not a number"):
        query_number(data_url, "SELECT 'many'", window_start=NOW, window_end=NOW,
                     timeout=timedelta(seconds=5))


def test_slow_query_times_out_on_postgresql(pg_url: str) -> None:
    with pytest.raises(SourceError, match="timed out after 1 s"):
        query_number(pg_url, "SELECT 1 FROM pg_sleep(5)", window_start=NOW, window_end=NOW,
                     timeout=timedelta(seconds=1))


def test_slow_query_times_out_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
            "SELECT count(*) FROM n")
    with pytest.raises(SourceError, match=r"timed out after 0\.5 s"):
        query_number(url, slow, window_start=NOW, window_end=NOW, timeout=timedelta(seconds=0.5))


def test_refused_connection_masks_password() -> None:
    url = "postgresql://app:topsecretpw@127.0.0.1:1/app"
    with pytest.raises(SourceError) as info:
        query_number(url, "SELECT 1", window_start=NOW, window_end=NOW,
                     timeout=timedelta(seconds=2))
    assert "topsecretpw" not in str(info.value) and "***" in str(info.value)


def test_missing_env_database_is_an_error_observation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_DB_URL", raising=False)
    rules = parse_rules("""
checks:
  sql_metric:
    - {name: dl, database: {env: APP_DB_URL}, query: SELECT 1, expect: {max: 0}}
""")
    obs = observe_sql_metric(rules.checks.sql_metric[0], now=NOW, was_firing=False)
    assert obs.status == Status.ERROR
    assert obs.summary == "check failed: dl: environment variable APP_DB_URL is not set"


def test_password_in_query_string_is_masked_too() -> None:
    url = "postgresql://app@127.0.0.1:1/orders?password=S3cr3tPW&sslmode=disable"
    with pytest.raises(SourceError) as info:
        query_number(url, "SELECT 1", window_start=NOW, window_end=NOW,
                     timeout=timedelta(seconds=2))
    assert "S3cr3tPW" not in str(info.value) and "127.0.0.1:1" in str(info.value)
