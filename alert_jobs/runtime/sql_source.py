"""What every family that reads a user's SQL database shares: one engine per URL, the
window bind parameters, the per-statement timeout and the database's own reason for a
failure.

Errors are for :class:`~alert_jobs.core.errors.SourceError` messages: they name the
database with its password masked (:func:`~alert_jobs.store.urls.safe_url`) and give
the database's first line, never a stack trace or a secret.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alert_jobs.core.errors import SourceError
from alert_jobs.store.urls import driver_url, safe_url

_ENGINES: dict[tuple[str, bool], Engine] = {}
_LOCK = threading.Lock()
_PARAM = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


def engine_for(url: str, timeout: float, *, utc_sessions: bool = False) -> Engine:
    """One engine (one pool) per URL and process; connecting gives up after ``timeout``.

    ``utc_sessions``: PostgreSQL sessions run in UTC, for sources whose naive timestamps
    are UTC (score tables); the URL's own ``options`` (e.g. ``-csearch_path=…``) are kept.
    """
    with _LOCK:
        engine = _ENGINES.get((url, utc_sessions))
        if engine is None:
            real = driver_url(url)
            connect_args: dict[str, Any] = {}
            try:  # a malformed URL (e.g. a port that is not a number) fails in make_url
                if real.startswith("postgresql"):
                    connect_args["connect_timeout"] = max(1, int(timeout))
                    if utc_sessions:  # connect_args win over the URL's: keep its options
                        own = sa.make_url(real).query.get("options")
                        own = " ".join(own) if isinstance(own, tuple) else own
                        connect_args["options"] = f"{own} -c timezone=UTC" if own else \
                            "-c timezone=UTC"
                elif real.startswith("sqlite"):
                    connect_args["timeout"] = timeout
                engine = sa.create_engine(real, connect_args=connect_args, pool_pre_ping=True)
            except Exception as exc:
                raise SourceError(f"bad database URL {safe_url(url)}: {db_reason(exc)}"
                                  ) from None
            _ENGINES[(url, utc_sessions)] = engine
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


def query_params(query: str, start: datetime, end: datetime, dialect: str) -> dict[str, Any]:
    """The window parameters ``query`` names (a driver refuses parameters it was not
    given a place for)."""
    wanted = set(_PARAM.findall(query))
    return {k: v for k, v in window_params(start, end, dialect).items() if k in wanted}


def apply_timeout(conn: sa.Connection, seconds: float, started: float) -> None:
    """Make every statement on ``conn`` give up ``seconds`` after ``started``
    (PostgreSQL's ``statement_timeout``; on SQLite, a progress handler)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql(f"SET statement_timeout = {int(seconds * 1000)}")
    elif dialect == "sqlite":
        raw = conn.connection.driver_connection
        assert raw is not None
        deadline = started + seconds
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)


@contextmanager
def timed_connection(url: str, seconds: float, *, what: str = "query"
                     ) -> Iterator[tuple[sa.Connection, float]]:
    """A connection to ``url`` whose statements time out after ``seconds``, and when it
    started; any failure inside is a :class:`SourceError` naming the database (and
    saying "timed out" when the time was up)."""
    engine = engine_for(url, seconds)
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            apply_timeout(conn, seconds, started)
            yield conn, started
    except SourceError:
        raise
    except Exception as exc:
        if time.monotonic() - started >= seconds:
            raise SourceError(f"{what} on {safe_url(url)} timed out after {seconds:g} s"
                              ) from None
        raise SourceError(f"{what} on {safe_url(url)} failed: {db_reason(exc)}") from None


def db_reason(exc: BaseException) -> str:
    """The database's own words, first line, without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    text = re.sub(r"\(Background on this error at:.*?\)", "", text).strip()
    return text[:300]
