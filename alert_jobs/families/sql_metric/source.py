"""Run a rule's SQL query against any SQLAlchemy URL and return one number.

Errors come back as :class:`SourceError` with a message that names the database
(password masked) and the database's own reason, never a stack trace or a secret.
The engine cache, window parameters and timeouts are shared with the other SQL
families (:mod:`alert_jobs.runtime.sql_source`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from alert_jobs.core.errors import SourceError
from alert_jobs.runtime.sql_source import query_params, timed_connection, window_params

__all__ = ["SourceError", "query_number", "window_params"]


def query_number(url: str, query: str, *, window_start: datetime, window_end: datetime,
                 timeout: timedelta) -> float | None:
    """First column of the first row as a float; ``None`` for no row or NULL."""
    with timed_connection(url, timeout.total_seconds()) as (conn, _):
        params = query_params(query, window_start, window_end, conn.dialect.name)
        row = conn.execute(sa.text(query), params).first()
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
