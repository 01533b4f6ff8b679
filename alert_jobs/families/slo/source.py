"""Read an SLO's good/total event counts per bucket from its source (I/O).

``read_buckets(sli, start, end, step)`` returns the buckets ``[start, start+step)``, …,
up to ``end`` (``end − start`` is a multiple of ``step``), oldest first. SQL sources run
the rule's query once per bucket (:func:`sql_buckets`, this module); Prometheus sources
answer many buckets with one range query (:mod:`alert_jobs.families.slo.prometheus`,
``read_buckets(sli: PrometheusSli, start, end, step) -> list[Bucket]``). A source that
cannot be read raises :class:`~alert_jobs.core.errors.SourceError` naming the SLO's
source and query (never a secret); a bucket the source has nothing for is
``Bucket(has_data=False)``.

A SQL query returns one row with columns named ``good, total`` or ``bad, total``
(any order, any case). A NULL ``total`` (or no row at all) means the source had
nothing for that bucket: a gap, judged ``nodata``; ``total = 0`` is a bucket without
traffic, which is data. The bind parameters are the ones ``sql_metric`` queries get
(:func:`~alert_jobs.runtime.sql_source.window_params`): on SQLite, UTC text
``YYYY-MM-DD HH:MM:SS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from alert_jobs.config import SecretMissingError, resolve
from alert_jobs.core.errors import SourceError
from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.config import Sli, SqlSli
from alert_jobs.runtime.sql_source import query_params, timed_connection
from alert_jobs.store.urls import safe_url


def read_buckets(sli: Sli, start: datetime, end: datetime, step: timedelta) -> list[Bucket]:
    """Dispatch on the SLI's source kind (the Prometheus module is imported lazily)."""
    if sli.prometheus is not None:
        from alert_jobs.families.slo import prometheus

        return prometheus.read_buckets(sli.prometheus, start, end, step)
    assert sli.sql is not None
    return sql_buckets(sli.sql, start, end, step)


def describe(sli: Sli) -> str:
    """The source as a message may name it (a ``nodata`` alert says where nothing came
    from): the database with its password masked and the query's first line, or the
    Prometheus URL without credentials and the ``total`` expression."""
    if sli.prometheus is not None:
        from alert_jobs.families.slo import prometheus

        return prometheus.describe(sli.prometheus)
    assert sli.sql is not None
    try:
        where = safe_url(resolve(sli.sql.database))
    except SecretMissingError:
        where = str(sli.sql.database)
    return f"SQL on {where}, query {first_line(sli.sql.query)}"


def first_line(query: str) -> str:
    line = next((ln.strip() for ln in query.strip().splitlines() if ln.strip()), "")
    return line if len(line) <= 80 else line[:77] + "…"


def bucket_edges(start: datetime, end: datetime, step: timedelta
                 ) -> list[tuple[datetime, datetime]]:
    """``[start, start+step)``, … up to ``end``; refuses a span that is not whole steps."""
    if step <= timedelta(0):
        raise ValueError(f"bucket step must be positive, got {step}")
    if (end - start) % step:
        raise ValueError(f"{start} … {end} is not a whole number of {step} buckets")
    count = (end - start) // step
    return [(start + i * step, start + (i + 1) * step) for i in range(count)]


def sql_buckets(sli: SqlSli, start: datetime, end: datetime, step: timedelta) -> list[Bucket]:
    """Run the SLI's query once per bucket on one connection (each statement within
    ``query_timeout``); oldest bucket first."""
    edges = bucket_edges(start, end, step)
    if not edges:
        return []
    url = resolve(sli.database)
    what = f'query "{first_line(sli.query)}"'
    out: list[Bucket] = []
    with timed_connection(url, sli.query_timeout.total_seconds(), what=what) as (conn, _):
        stmt = sa.text(sli.query)
        dialect = conn.dialect.name
        for lo, hi in edges:
            result = conn.execute(stmt, query_params(sli.query, lo, hi, dialect))
            row = result.mappings().first()
            out.append(_bucket(row, lo, hi, what=what, where=safe_url(url)))
    return out


def _bucket(row: Mapping[Any, Any] | None, start: datetime, end: datetime, *, what: str,
            where: str) -> Bucket:
    if row is None:
        return Bucket(start, end, 0.0, 0.0, has_data=False)
    columns = {str(k).lower(): v for k, v in row.items()}
    if "total" not in columns or ("good" in columns) == ("bad" in columns):
        raise SourceError(
            f"{what} on {where} returned the columns {', '.join(map(str, row.keys()))}; "
            "it must return one row with columns named good, total or bad, total "
            "(e.g. SELECT count(*) FILTER (WHERE status < 500) AS good, count(*) AS total)")
    total = _number(columns["total"], "total", what)
    if total is None:
        return Bucket(start, end, 0.0, 0.0, has_data=False)
    if "good" in columns:
        good = _number(columns["good"], "good", what)
        good = 0.0 if good is None else good
    else:
        bad = _number(columns["bad"], "bad", what)
        good = total - (0.0 if bad is None else bad)
    try:
        return Bucket(start, end, good, total)
    except ValueError as exc:
        raise SourceError(f"{what} on {where} for {start:%Y-%m-%d %H:%M:%S} – "
                          f"{end:%H:%M:%S} UTC: {exc}") from None


def _number(value: Any, column: str, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SourceError(f"{what} returned {type(value).__name__} {str(value)[:40]!r} as "
                          f"{column}, not a number") from None
