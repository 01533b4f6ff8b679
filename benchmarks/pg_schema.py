"""A private PostgreSQL schema for one benchmark run (``$TEST_DATABASE_URL``), dropped at
the end: benchmarks load millions of rows and must not meet each other's tables."""

from __future__ import annotations

import os
import uuid

from alert_jobs.store import make_engine, safe_url

TEST_DATABASE_URL_ENV = "TEST_DATABASE_URL"


def scratch_schema(prefix: str) -> tuple[str | None, str]:
    """``(url, schema)`` of a new schema ``<prefix>_<random>`` (the URL sets its
    ``search_path``), or ``(None, why not)`` to report as skipped."""
    base = os.environ.get(TEST_DATABASE_URL_ENV)
    if not base:
        return None, f"${TEST_DATABASE_URL_ENV} not set"
    engine = make_engine(base)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    except Exception as exc:  # unreachable server: skip with the reason
        return None, f"PostgreSQL unavailable at {safe_url(base)}: {type(exc).__name__}"
    finally:
        engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{name}", name


def drop_schema(name: str) -> None:
    """Drop a schema :func:`scratch_schema` made, with everything in it."""
    engine = make_engine(os.environ[TEST_DATABASE_URL_ENV])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    engine.dispose()
