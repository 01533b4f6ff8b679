"""Timeline tables (SQLAlchemy Core) and the migrations that create them.

All tables carry the ``alert_`` prefix so they can share a database with other
things. Times are stored as UTC; :class:`UTCDateTime` gives them back timezone-aware
on every backend (SQLite has no timezone type).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A DateTime that refuses naive input and always returns aware UTC datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the timeline; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData()

alerts = sa.Table(
    "alert_alerts",
    metadata,
    sa.Column("fingerprint", sa.String(32), primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False, index=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("episode", sa.Integer, nullable=False, default=0),
    sa.Column("active_since", UTCDateTime),
    sa.Column("fired_at", UTCDateTime),
    sa.Column("recovering_since", UTCDateTime),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("last_notified_at", UTCDateTime),
    sa.Column("last_suppressed_at", UTCDateTime),
    sa.Column("notified_firing", sa.Boolean, nullable=False, default=False),
    sa.Column("notified_severity", sa.String(16)),
    sa.Column("notify_seq", sa.Integer, nullable=False, default=0),
    sa.Column("acked_at", UTCDateTime),
    sa.Column("acked_by", sa.String(128)),
    sa.Column("ack_note", sa.Text),
    sa.Column("ack_outcome", sa.String(32)),
    sa.Column("snoozed_until", UTCDateTime),
    sa.Column("escalation_step", sa.Integer, nullable=False, default=0),
    sa.Column("last_status", sa.String(16)),
    sa.Column("last_value", sa.Float),
    sa.Column("last_summary", sa.Text, nullable=False, default=""),
    sa.Column("last_eval_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("fingerprint", sa.String(32), index=True),
    sa.Column("rule", sa.String(128), index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("actor", sa.String(128), nullable=False, default="system"),
    sa.Column("source", sa.String(32), nullable=False, default="engine"),
    sa.Column("run_id", sa.String(64), index=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Index("ix_alert_events_at", "at"),
    sa.Index("ix_alert_events_kind_at", "kind", "at"),
)

evaluations = sa.Table(
    "alert_evaluations",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("expected", sa.Text, nullable=False, default=""),
    sa.Column("summary", sa.Text, nullable=False, default=""),
    sa.Column("state_after", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index("ix_alert_evaluations_rule_at", "rule", "at"),
)

silences = sa.Table(
    "alert_silences",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("matchers", sa.JSON, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False, index=True),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

outbox = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("receiver", sa.String(128), nullable=False),
    sa.Column("fingerprint", sa.String(32)),
    sa.Column("rule", sa.String(128)),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("dedup_key", sa.String(255), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_until", UTCDateTime),
    sa.Column("claim_token", sa.String(36)),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("failed_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("run_id", sa.String(64)),
    sa.UniqueConstraint("receiver", "dedup_key", name="uq_alert_outbox_receiver_dedup"),
    sa.Index("ix_alert_outbox_due", "delivered_at", "failed_at", "next_attempt_at"),
)

rule_settings = sa.Table(
    "alert_rule_settings",
    metadata,
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("changed_by", sa.String(128), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
)

schema_version = sa.Table(
    "alert_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)


# ----- version 2: Redis quota counting ----------------------------------------------

redis_samples = sa.Table(
    "alert_redis_samples",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("target", sa.String(128), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("server_id", sa.String(64), nullable=False, default=""),
    sa.Column("uptime_seconds", sa.Float),
    sa.Column("total_commands", sa.Float, nullable=False),
    sa.Column("increment", sa.Float, nullable=False),
    sa.Column("reset", sa.Boolean, nullable=False, default=False),
    sa.Column("counted", sa.Boolean, nullable=False, default=True),
    sa.Column("keyspace_hits", sa.Float),
    sa.Column("keyspace_misses", sa.Float),
    sa.Column("evicted_keys", sa.Float),
    sa.Column("rejected_connections", sa.Float),
    sa.Column("commands_spent", sa.Integer, nullable=False, default=0),
    sa.Column("run_id", sa.String(64)),
    sa.Index("ix_alert_redis_samples_target_at", "target", "at"),
)

redis_windows = sa.Table(
    "alert_redis_windows",
    metadata,
    sa.Column("target", sa.String(128), primary_key=True),
    sa.Column("window_start", UTCDateTime, primary_key=True),
    sa.Column("window_end", UTCDateTime, nullable=False),
    sa.Column("window_kind", sa.String(8), nullable=False),
    sa.Column("used", sa.Float, nullable=False),
    sa.Column("partial", sa.Boolean, nullable=False),
    sa.Column("resets", sa.Integer, nullable=False, default=0),
    sa.Column("last_at", UTCDateTime, nullable=False),
    sa.Column("last_total", sa.Float, nullable=False),
    sa.Column("last_server_id", sa.String(64), nullable=False, default=""),
    sa.Column("last_uptime", sa.Float),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# ----- version 3: grouped notifications ----------------------------------------------

notify_queue = sa.Table(
    "alert_notify_queue",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("receiver", sa.String(128), nullable=False),
    sa.Column("group_key", sa.String(512), nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Index("ix_alert_notify_queue_group", "receiver", "group_key"),
)

groups = sa.Table(
    "alert_groups",
    metadata,
    sa.Column("receiver", sa.String(128), primary_key=True),
    sa.Column("group_key", sa.String(512), primary_key=True),
    sa.Column("route_id", sa.String(64), nullable=False),
    sa.Column("group_labels", sa.JSON, nullable=False),
    sa.Column("group_interval_seconds", sa.Float, nullable=False),
    sa.Column("first_at", UTCDateTime, nullable=False),
    sa.Column("last_flush_at", UTCDateTime),
    sa.Column("next_flush_at", UTCDateTime, index=True),
    sa.Column("flush_seq", sa.Integer, nullable=False, default=0),
    sa.Column("firing", sa.JSON, nullable=False),  # fingerprints last notified as firing
)

# ----- version 4: drift reference summaries ------------------------------------------

drift_references = sa.Table(
    "alert_drift_references",
    metadata,
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("segment", sa.String(255), primary_key=True),  # "" for an unsegmented rule
    sa.Column("slot", sa.Integer, primary_key=True),  # -1, or hour of the week 0..167 (UTC)
    sa.Column("window_start", UTCDateTime, nullable=False),
    sa.Column("window_end", UTCDateTime, nullable=False),
    sa.Column("covered_seconds", sa.Float, nullable=False),
    sa.Column("settings", sa.String(64), nullable=False),  # hash of what the bins depend on
    sa.Column("summary", sa.JSON, nullable=False),  # sparse fine histogram + counts
    sa.Column("built_at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(64)),
)

# ----- version 5: heartbeats ----------------------------------------------------------

heartbeats = sa.Table(
    "alert_heartbeats",
    metadata,
    sa.Column("slug", sa.String(128), primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("declared", sa.Boolean, nullable=False, default=False),  # from alerts.yaml
    sa.Column("config_hash", sa.String(32), nullable=False, default=""),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("period_seconds", sa.Float),
    sa.Column("cron", sa.String(128)),
    sa.Column("timezone", sa.String(64), nullable=False, default="UTC"),
    sa.Column("grace_seconds", sa.Float, nullable=False),
    sa.Column("max_duration_seconds", sa.Float),
    sa.Column("manual_resume", sa.Boolean, nullable=False, default=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_ping", UTCDateTime),
    sa.Column("last_signal", sa.String(16)),
    sa.Column("last_exit_code", sa.Integer),
    sa.Column("last_start", UTCDateTime),
    sa.Column("last_start_rid", sa.String(64)),
    sa.Column("last_duration_seconds", sa.Float),
    sa.Column("open_problems", sa.String(64), nullable=False, default=""),
    # When the sensor must look at this row next (deadline, or now after a ping that
    # changes an alert; every 5 min while one is open); NULL when only a ping can change
    # anything (new, paused).
    sa.Column("alert_after", UTCDateTime),
    sa.Column("n_pings", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_alert_heartbeats_alert_after", "alert_after"),
)

heartbeat_pings = sa.Table(
    "alert_heartbeat_pings",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("slug", sa.String(128), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # success | fail | start | ignored
    sa.Column("exit_code", sa.Integer),
    sa.Column("rid", sa.String(64)),
    sa.Column("duration_seconds", sa.Float),
    sa.Column("body", sa.Text, nullable=False, default=""),
    sa.Column("remote_addr", sa.String(64), nullable=False, default=""),
    sa.Column("user_agent", sa.String(256), nullable=False, default=""),
    sa.Index("ix_alert_heartbeat_pings_slug_id", "slug", "id"),
)

# ----- version 6: alert quality ------------------------------------------------------

episodes = sa.Table(
    "alert_episodes",
    metadata,
    # One row per firing episode of an alert instance, kept in the same transaction as
    # the events that change it, so quality rollups are GROUP BYs over small rows
    # (see alert_jobs/quality/episodes.py for what each column means).
    sa.Column("fingerprint", sa.String(32), primary_key=True),
    sa.Column("episode", sa.Integer, primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # UTC date of fired_at, YYYY-MM-DD
    sa.Column("fired_at", UTCDateTime, nullable=False),
    sa.Column("first_notified_at", UTCDateTime),
    sa.Column("first_ack_at", UTCDateTime),
    sa.Column("first_response_at", UTCDateTime),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("ack_seconds", sa.Float),
    sa.Column("response_seconds", sa.Float),
    sa.Column("resolve_seconds", sa.Float),
    sa.Column("outcome", sa.String(32)),
    sa.Column("outcome_by", sa.String(128)),
    sa.Column("notifications", sa.Integer, nullable=False, default=0),
    sa.Column("pages", sa.Integer, nullable=False, default=0),
    sa.Column("flap", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_alert_episodes_fired_at", "fired_at"),
    # Rollups filter on day and group by (day, rule, severity); each duration's median
    # is a window ordered by it. These covering indexes hand the rows over in that order,
    # so the percentile windows need no sort, and the last one also covers the aggregate
    # (measured: benchmarks/quality_bench.py).
    sa.Index("ix_alert_episodes_ack", "day", "rule", "severity", "ack_seconds"),
    sa.Index("ix_alert_episodes_response", "day", "rule", "severity", "response_seconds"),
    sa.Index("ix_alert_episodes_resolve", "day", "rule", "severity", "resolve_seconds",
             "ack_seconds", "outcome", "notifications", "pages", "flap"),
)

_V1_TABLES = [alerts, events, evaluations, silences, outbox, rule_settings]


def _v1_initial(conn: Connection) -> None:
    """Version 1: the core timeline. Never edit a released migration; add a new one."""
    metadata.create_all(conn, tables=_V1_TABLES, checkfirst=True)


def _v2_redis_quota(conn: Connection) -> None:
    """Version 2: Redis samples and per-window usage (baselines survive restarts)."""
    metadata.create_all(conn, tables=[redis_samples, redis_windows], checkfirst=True)


def _v3_groups(conn: Connection) -> None:
    """Version 3: notifications are grouped per route, receiver and group labels."""
    metadata.create_all(conn, tables=[notify_queue, groups], checkfirst=True)


def _v4_drift_references(conn: Connection) -> None:
    """Version 4: stored reference summaries of score_drift rules."""
    metadata.create_all(conn, tables=[drift_references], checkfirst=True)


def _v5_heartbeats(conn: Connection) -> None:
    """Version 5: heartbeat checks (indexed next deadline) and their bounded ping log."""
    metadata.create_all(conn, tables=[heartbeats, heartbeat_pings], checkfirst=True)


def _v6_alert_quality(conn: Connection) -> None:
    """Version 6: one row per alert episode, backfilled from the existing events."""
    from alert_jobs.quality.episodes import backfill

    metadata.create_all(conn, tables=[episodes], checkfirst=True)
    backfill(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial timeline schema", _v1_initial),
    (2, "redis quota samples and windows", _v2_redis_quota),
    (3, "grouped notifications", _v3_groups),
    (4, "drift reference summaries", _v4_drift_references),
    (5, "heartbeats", _v5_heartbeats),
    (6, "alert quality", _v6_alert_quality),
]
LATEST_VERSION = MIGRATIONS[-1][0]
