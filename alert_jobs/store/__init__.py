"""The SQL timeline: alert state, events, silences, the outbox, and the schema.

SQLAlchemy Core on SQLite (default) or PostgreSQL; alembic owns the schema
(:mod:`alert_jobs.store.migrate`). See :class:`~alert_jobs.store.timeline.Timeline`.
"""

from alert_jobs.store.alerts import ProcessResult
from alert_jobs.store.db import (
    DATABASE_URL_ENV,
    Database,
    TimelineError,
    default_database_url,
    make_engine,
    utcnow,
)
from alert_jobs.store.outbox import Attempt, OutboxItem
from alert_jobs.store.timeline import Timeline, shared_timeline
from alert_jobs.store.urls import driver_url, safe_url

__all__ = ["DATABASE_URL_ENV", "Attempt", "Database", "OutboxItem", "ProcessResult", "Timeline",
           "TimelineError", "default_database_url", "driver_url", "make_engine", "safe_url",
           "shared_timeline", "utcnow"]
