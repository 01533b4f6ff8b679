"""What a new process pays before its first evaluation: the timeline's driver and schema check.

Every scheduled run is a new process, so the first use of the timeline must not pay
imports or schema reflection (``benchmarks/cost_bench.py`` measures the cold start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alert_jobs.store import Timeline, migrate

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def statements(timeline: Timeline) -> Iterator[list[str]]:
    """Every SQL statement the timeline's engine sends while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(timeline.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(timeline.engine, "before_cursor_execute", record)


def test_opening_an_upgraded_timeline_is_one_select(db_url: str) -> None:
    Timeline(db_url).upgrade()
    timeline = Timeline(db_url)  # a new process's first use
    with statements(timeline) as seen:
        timeline.ensure_schema()
    selects = [s for s in seen if "alert_alembic_version" in s]
    assert len(selects) == 1 and selects[0].lstrip().upper().startswith("SELECT")
    # BEGIN IMMEDIATE (SQLite) aside, nothing else: no reflection, no alembic
    assert [s for s in seen if s not in selects and not s.startswith("BEGIN")] == []
    assert timeline.schema_version() == migrate.HEAD


def test_a_new_database_is_still_found_empty_and_upgraded_on_first_use(db_url: str) -> None:
    timeline = Timeline(db_url)
    assert timeline.schema_version() == 0  # no version table: the closer look says empty
    with statements(timeline) as seen:
        timeline.ensure_schema()
    assert len(seen) > 10  # the positive control: the migrations ran
    assert timeline.schema_version() == migrate.HEAD
    timeline.alerts.list()  # and the tables are there


def test_an_empty_version_table_reads_as_version_zero(sqlite_url: str) -> None:
    timeline = Timeline(sqlite_url)
    with timeline.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {migrate.VERSION_TABLE} "
                             "(version_num VARCHAR(32) NOT NULL)")
    assert timeline.schema_version() == 0


def test_a_foreign_revision_is_still_refused(sqlite_url: str) -> None:
    timeline = Timeline(sqlite_url)
    with timeline.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {migrate.VERSION_TABLE} "
                             "(version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql(f"INSERT INTO {migrate.VERSION_TABLE} VALUES ('abc123')")
    with pytest.raises(migrate.MigrationError, match="'abc123' is not one of alert-jobs'"):
        timeline.schema_version()


def _modules_after_import(database_url: str | None) -> dict[str, bool]:
    env = {k: v for k, v in os.environ.items() if k != "ALERT_JOBS_DATABASE_URL"}
    if database_url is not None:
        env["ALERT_JOBS_DATABASE_URL"] = database_url
    code = ("import json, sys; import alert_jobs.store; print(json.dumps({m: m in sys.modules "
            "for m in ('psycopg', 'sqlalchemy.dialects.postgresql.psycopg', "
            "'sqlalchemy.dialects.sqlite', 'sqlite3')}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=True, timeout=120)
    loaded: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_the_configured_timeline_driver_is_imported_with_the_store() -> None:
    pg = _modules_after_import("postgresql://alerts@db.invalid:5432/alerts")
    assert pg["psycopg"] and pg["sqlalchemy.dialects.postgresql.psycopg"]
    default = _modules_after_import(None)  # the default timeline is SQLite
    assert default["sqlalchemy.dialects.sqlite"] and default["sqlite3"]
    assert not default["psycopg"]  # control: PostgreSQL's driver only when configured


def test_a_bad_configured_url_does_not_break_the_import() -> None:
    loaded = _modules_after_import("notadb://what")
    assert not loaded["psycopg"]
    with pytest.raises(sa.exc.NoSuchModuleError):
        Timeline("notadb://what")  # reported at first use, as before
