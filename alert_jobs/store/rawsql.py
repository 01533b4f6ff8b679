"""The hot path's statements on SQLite, as SQL text built once and run on the driver.

A steady re-evaluation is three statements (its row with the context, the UPDATE, the
evaluation INSERT). Through SQLAlchemy each one costs more CPU than SQLite spends
running it (cache lookup, parameter processing, result set-up, events); the bare
write transaction the timeline is measured against is one. So on SQLite, and only
inside a transaction SQLAlchemy already began (``BEGIN IMMEDIATE``, commit and
rollback stay its job), these statements run on the DB-API cursor with SQL text made
once from the :mod:`alert_jobs.store.schema` tables.

Values are written exactly as SQLAlchemy writes them, so either path reads what the
other wrote: times as naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's
SQLite ``DATETIME`` format, via :class:`~alert_jobs.store.schema.UTCDateTime`), JSON
with ``json.dumps``, booleans as 0/1. PostgreSQL keeps the SQLAlchemy statements
(its figure is dominated by round trips, not by CPU).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from alert_jobs.store import schema

_DIALECT = sqlite.dialect(paramstyle="named")


def bind_time(value: datetime | None) -> str | None:
    """A time as SQLAlchemy stores a ``UTCDateTime`` on SQLite (naive UTC text)."""
    if value is None:
        return None
    if value.tzinfo is None:  # as UTCDateTime refuses it, through SQLAlchemy
        error = ValueError("naive datetime given to the timeline; pass an aware UTC time")
        raise sa.exc.StatementError(str(error), None, None, error)
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    text = value.replace(tzinfo=None).isoformat(" ")  # always with microseconds, as
    return text if value.microsecond else text + ".000000"  # SQLAlchemy writes them


def read_time(value: str | None) -> datetime | None:
    """A stored ``UTCDateTime`` back as an aware UTC datetime."""
    # One parse of "…+00:00" is cheaper than a parse and a replace (pages read thousands)
    return None if value is None else datetime.fromisoformat(value + "+00:00")


def bind_time_for(value: datetime, dialect: str) -> Any:
    """A time for a hand-written statement run on the driver: SQLite's stored text, an
    aware UTC datetime for PostgreSQL."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the timeline; pass an aware UTC time")
    return bind_time(value) if dialect == "sqlite" else value.astimezone(UTC)


def read_any_time(value: Any) -> datetime:
    """A time a driver returned (SQLite: text; PostgreSQL: a datetime) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fetch_all(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run a hand-written read on the driver's cursor (no SQLAlchemy compile on a hot
    path); PostgreSQL prepares it once per connection. Statement listeners still see it."""
    cursor = _cursor(conn)
    try:
        _seen(conn, cursor, sql, params, False)
        if conn.dialect.name == "postgresql":
            cursor.execute(sql, params, prepare=True)
        else:
            cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _bind_json(value: Any) -> str:
    return json.dumps(value)


def _bind_bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _binder(column: sa.Column[Any]) -> Callable[[Any], Any] | None:
    if isinstance(column.type, schema.UTCDateTime):
        return bind_time
    if isinstance(column.type, sa.JSON):
        return _bind_json
    if isinstance(column.type, sa.Boolean):
        return _bind_bool
    return None


class _Write:
    """One INSERT or UPDATE of ``columns``: its SQL text and each value's conversion."""

    def __init__(self, sql: str, columns: Sequence[sa.Column[Any]],
                 extra: Sequence[str] = ()) -> None:
        self.sql = sql
        self.names = [c.name for c in columns]
        self.convert = [(c.name, f) for c in columns if (f := _binder(c)) is not None]
        self.extra = tuple(extra)

    def params(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {name: row.get(name) for name in self.names}
        for name, convert in self.convert:
            out[name] = convert(out[name])
        for name in self.extra:
            out[name] = row[name]
        return out

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        cursor = _cursor(conn)
        try:
            if len(rows) == 1:
                params: Any = self.params(rows[0])
                _seen(conn, cursor, self.sql, params, False)
                cursor.execute(self.sql, params)
            else:
                params = [self.params(r) for r in rows]
                _seen(conn, cursor, self.sql, params, True)
                cursor.executemany(self.sql, params)
        finally:
            cursor.close()


def _insert(table: sa.Table, skip: Sequence[str] = ("id",)) -> _Write:
    columns = [c for c in table.c if c.name not in skip]
    sql = (f"INSERT INTO {table.name} ({', '.join(c.name for c in columns)}) "
           f"VALUES ({', '.join(':' + c.name for c in columns)})")
    return _Write(sql, columns)


def _seen(conn: Connection, cursor: Any, sql: str, params: Any, many: bool) -> None:
    """Tell ``before_cursor_execute`` listeners (statement counts in tests and
    benchmarks) about a statement SQLAlchemy did not send; free when there are none."""
    if conn.dispatch.before_cursor_execute:
        conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, many)


def _cursor(conn: Connection) -> Any:
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw.cursor()


INSERT_ALERT = _insert(schema.alerts, skip=())
INSERT_EVALUATION = _insert(schema.evaluations)
INSERT_EVENT = _insert(schema.events)
INSERT_QUEUE = _insert(schema.notify_queue)
INSERT_EPISODE = _insert(schema.episodes, skip=())

#: Never rewritten (they make the fingerprint): the UPDATE leaves the key and rule
#: indexes alone.
_IDENTITY = ("fingerprint", "rule", "labels")
_CHANGED = [c for c in schema.alerts.c if c.name not in _IDENTITY]


_BIND = {c.name: _binder(c) for c in _CHANGED}


@functools.cache
def _update_sql(names: tuple[str, ...]) -> str:
    return (f"UPDATE {schema.alerts.name} SET {', '.join(f'{n} = :{n}' for n in names)} "
            "WHERE fingerprint = :b_fp")


def update_alerts(conn: Connection, changes: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """UPDATE each ``(fingerprint, {column: value})`` with only the columns that changed:
    a steady re-evaluation rewrites a few columns, not all 23 (one statement per set of
    columns; their values are converted here)."""
    by_sql: dict[str, list[dict[str, Any]]] = {}
    for fp, values in changes:
        params = {"b_fp": fp}
        for name, value in values.items():
            convert = _BIND[name]
            params[name] = convert(value) if convert is not None else value
        by_sql.setdefault(_update_sql(tuple(values)), []).append(params)
    cursor = _cursor(conn)
    try:
        for sql, rows in by_sql.items():
            if len(rows) == 1:
                _seen(conn, cursor, sql, rows[0], False)
                cursor.execute(sql, rows[0])
            else:
                _seen(conn, cursor, sql, rows, True)
                cursor.executemany(sql, rows)
    finally:
        cursor.close()


def is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def compiled(statement: sa.ClauseElement) -> str:
    """``statement`` as SQLite SQL text with ``:name`` parameters (built once)."""
    return str(statement.compile(dialect=_DIALECT))


def _reader(column: sa.Column[Any]) -> Callable[[Any], Any] | None:
    if isinstance(column.type, schema.UTCDateTime):
        return read_time
    if isinstance(column.type, sa.JSON):
        return lambda v: None if v is None else json.loads(v)
    if isinstance(column.type, sa.Boolean):
        return lambda v: None if v is None else bool(v)
    return None


def readers(columns: Sequence[sa.Column[Any]]) -> list[Callable[[Any], Any] | None]:
    """Per column, what turns a stored value back into SQLAlchemy's (None: as is)."""
    return [_reader(c) for c in columns]


def row_reader(columns: Sequence[sa.Column[Any]], names: Sequence[str] | None = None
               ) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Values of ``columns`` (the first ones of a driver row) as SQLAlchemy would
    read them, by name (``names``: only these)."""
    wanted = [(i, c.name, _reader(c)) for i, c in enumerate(columns)
              if names is None or c.name in names]

    def read(row: Sequence[Any]) -> dict[str, Any]:
        return {name: (convert(row[i]) if convert is not None else row[i])
                for i, name, convert in wanted}
    return read
