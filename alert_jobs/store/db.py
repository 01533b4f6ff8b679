"""The timeline database: where it is, how to connect, and its schema version.

SQLite by default (``$DAGSTER_HOME/alerts.db``), PostgreSQL in production. On SQLite
every write transaction takes the write lock up front (``BEGIN IMMEDIATE``, with a
busy timeout), so concurrent writers queue instead of failing half-way; on PostgreSQL
the stores lock the rows they change. The schema belongs to alembic
(:mod:`alert_jobs.store.migrate`); a new database is upgraded on first use.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alert_jobs.store.urls import driver_url

DATABASE_URL_ENV = "ALERT_JOBS_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class TimelineError(RuntimeError):
    """A timeline operation that cannot be done as asked (unknown id, bad state)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def default_database_url() -> str:
    """``$ALERT_JOBS_DATABASE_URL``, else SQLite at ``$DAGSTER_HOME/alerts.db``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(home / 'alerts.db').resolve()}"


def make_engine(url: str) -> Engine:
    """An engine tuned for the timeline: WAL + busy timeout + IMMEDIATE writes on SQLite."""
    url = driver_url(url)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, future=True)

    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        future=True,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, own transaction boundaries, so BEGIN IMMEDIATE
        # below takes the write lock up front instead of failing mid-transaction.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Switching a new database to WAL can answer "database is locked" at once while
        # another process is switching it too (the busy handler is not always asked):
        # try again for a few seconds, as the busy timeout would.
        for attempt in range(100):
            try:
                cur.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def preload_driver(url: str) -> None:
    """Import ``url``'s SQLAlchemy dialect and DB-API driver now, not at first use.

    Each run is a new process whose first evaluation would otherwise pay these imports
    (psycopg and SQLAlchemy's PostgreSQL dialect: about 170 ms; SQLite's: about 15 ms)
    inside the check. Importing them with the rest of the code keeps the first
    evaluation close to the later ones. A bad URL or a missing driver is left for the
    first use to report, with its context.
    """
    with suppress(Exception):  # reported where the URL is used
        sa.make_url(driver_url(url)).get_dialect().import_dbapi()


# The timeline's driver (the configured one, else SQLite's) is loaded with this module.
preload_driver(os.environ.get(DATABASE_URL_ENV) or "sqlite://")


@functools.cache
def pg_lock_or_create(table: sa.Table, keys: tuple[str, ...]) -> Any:
    """PostgreSQL's ``INSERT … ON CONFLICT (keys) DO UPDATE`` (a no-op update that locks
    the row) ``RETURNING`` the row and whether it was created (``xmax = 0``: a row version
    written by the insert, not by the conflict's update): every row a transaction needs
    is inserted or locked by one statement, in the order of its parameters, so writers
    that take them in the same (key) order never deadlock. Built once per table."""
    from sqlalchemy.dialects.postgresql import insert

    stmt = insert(table)
    return (stmt.on_conflict_do_update(index_elements=[table.c[k] for k in keys],
                                       set_={keys[0]: stmt.excluded[keys[0]]})
            .returning(*table.c, sa.literal_column("(xmax = 0)").label("created")))


@functools.cache
def upsert(dialect: str, table: sa.Table, key: str) -> Any:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` every other column of ``table`` (built
    once per dialect and table), for the timeline's dialects."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:
        raise ValueError(f"unsupported timeline database {dialect!r}: use SQLite or "
                         "PostgreSQL")
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={c.name: stmt.excluded[c.name] for c in table.c if c.name != key})


class Database:
    """One timeline database: an engine (one pool), its dialect and its schema.

    Safe to share across threads; one per process and URL. Every store takes one.
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None):
        self.url = url or default_database_url()
        self.engine = engine or make_engine(self.url)
        self._schema_ready = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> list[str]:
        """Apply pending migrations; returns what was applied. Safe to run twice, or at
        once from several hosts (see :mod:`alert_jobs.store.migrate`)."""
        from alert_jobs.store import migrate

        applied = migrate.upgrade(self.engine)
        self._schema_ready = True
        return applied

    def schema_version(self) -> int:
        """The applied schema version (0 for an empty database).

        Every run opens the timeline in a new process and asks this first, so the common
        case is one plain ``SELECT`` of alembic's version row (no reflection, nothing to
        compile); only a database without that table (new, or from before alembic) is
        inspected further.
        """
        from alert_jobs.store import migrate

        try:
            with self.engine.connect() as conn:
                revision = conn.exec_driver_sql(
                    f"SELECT version_num FROM {migrate.VERSION_TABLE}").scalar()
        except sa.exc.DBAPIError:  # no version table (or no database): look closer
            with self.engine.connect() as conn:
                return migrate.current_version(conn)
        return migrate.version_of(str(revision)) if revision else 0

    def ensure_schema(self) -> None:
        """Upgrade on first use, so a new install needs no separate step."""
        if not self._schema_ready:
            from alert_jobs.store import migrate

            if self.schema_version() < migrate.head_version():
                self.upgrade()
            self._schema_ready = True

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One write transaction (the schema is made ready first)."""
        self.ensure_schema()
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (the schema is made ready first)."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            yield conn

    def lock_rows(self) -> bool:
        """Whether reads that precede a write must lock their rows (``FOR UPDATE``).
        SQLite needs none: its write transactions already hold the database lock."""
        return self.dialect == "postgresql"

    def insert_ignore(self, table: sa.Table, keys: list[str]) -> Any:
        """``INSERT … ON CONFLICT (keys) DO NOTHING`` for the timeline's dialects."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
        raise TimelineError(f"unsupported timeline database {self.dialect!r}: "
                            "use SQLite or PostgreSQL")

    def dispose(self) -> None:
        self.engine.dispose()
