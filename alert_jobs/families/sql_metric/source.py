"""Run a rule's SQL query against any SQLAlchemy URL and return one number.

Errors come back as :class:`SourceError` with a message that names the database
(password masked) and the database's own reason, never a stack trace or a secret.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alert_jobs.core.errors import SourceError
from alert_jobs.store.urls import driver_url, safe_url

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
_PARAM = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


def _engine(url: str, timeout: float) -> Engine:
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            real = driver_url(url)
            connect_args: dict[str, Any] = {}
            if real.startswith("postgresql"):
                connect_args["connect_timeout"] = max(1, int(timeout))
            elif real.startswith("sqlite"):
                connect_args["timeout"] = timeout
            engine = sa.create_engine(real, connect_args=connect_args, pool_pre_ping=True)
            _ENGINES[url] = engine
        return engine


def window_params(start: datetime, end: datetime, dialect: str) -> dict[str, Any]:
    """Bind parameters a query may use: ``:window_start``, ``:window_end``, ``:window_seconds``.

    On SQLite (no timestamp type) the bounds are UTC text ``YYYY-MM-DD HH:MM:SS``,
    the format of ``datetime('now')``, so text comparison orders them correctly.
    """
    if dialect == "sqlite":
        fmt = "%Y-%m-%d %H:%M:%S"
        s: Any = start.strftime(fmt)
        e: Any = end.strftime(fmt)
    else:
        s, e = start, end
    return {
        "window_start": s,
        "window_end": e,
        "window_seconds": (end - start).total_seconds(),
        "window_start_epoch": start.timestamp(),
        "window_end_epoch": end.timestamp(),
    }


def query_number(url: str, query: str, *, window_start: datetime, window_end: datetime,
                 timeout: timedelta) -> float | None:
    """First column of the first row as a float; ``None`` for no row or NULL."""
    seconds = timeout.total_seconds()
    try:
        engine = _engine(url, seconds)
    except Exception as exc:
        raise SourceError(f"bad database URL {safe_url(url)}: {_reason(exc)}") from None
    dialect = engine.dialect.name
    wanted = set(_PARAM.findall(query))
    params = {k: v for k, v in window_params(window_start, window_end, dialect).items()
              if k in wanted}
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            _apply_timeout(conn, dialect, seconds, started)
            row = conn.execute(sa.text(query), params).first()
    except Exception as exc:
        if time.monotonic() - started >= seconds:
            raise SourceError(f"query on {safe_url(url)} timed out after {seconds:g} s") from None
        raise SourceError(f"query on {safe_url(url)} failed: {_reason(exc)}") from None
    if row is None or row[0] is None:
        return None
    value = row[0]
    if isinstance(value, Decimal | int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SourceError(f"query returned {type(value).__name__} {str(value)[:40]!r}, "
                          "not a number") from None


def _apply_timeout(conn: sa.Connection, dialect: str, seconds: float, started: float) -> None:
    if dialect == "postgresql":
        conn.exec_driver_sql(f"SET statement_timeout = {int(seconds * 1000)}")
    elif dialect == "sqlite":
        raw = conn.connection.driver_connection
        assert raw is not None
        deadline = started + seconds
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)


def _reason(exc: BaseException) -> str:
    """The database's own words, first line, without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    text = re.sub(r"\(Background on this error at:.*?\)", "", text).strip()
    return text[:300]

