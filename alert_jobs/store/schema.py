"""Timeline tables (SQLAlchemy Core): alerts, events, evaluations, silences, outbox,
notification groups, rule settings and alert episodes.

All tables carry the ``alert_`` prefix so they can share a database with other
things. Times are stored as UTC; :class:`UTCDateTime` gives them back timezone-aware
on every backend (SQLite has no timezone type). Families define the tables of their
own state on the same :data:`metadata` (e.g. ``alert_heartbeats`` in
``families/heartbeat/store.py``). The schema itself is created and changed by the
alembic revisions in ``store/migrations/versions`` only; a test checks that they
produce exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


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
    sa.Column("last_expected", sa.Text, nullable=False, default=""),  # migration 0012
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
    # `alert-jobs timeline --run-id R` lists a run's evaluations (migration 0008)
    sa.Index("ix_alert_evaluations_run_id", "run_id"),
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
    sa.Index("ix_alert_outbox_run_id", "run_id"),  # deliver(raised_by=…)
)

rule_settings = sa.Table(
    "alert_rule_settings",
    metadata,
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("changed_by", sa.String(128), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    # NULL: disabled until someone enables it; else it counts as enabled again from
    # this time on (migration 0015), read where disabled rules are read.
    sa.Column("disabled_until", UTCDateTime, nullable=True),
)

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

episodes = sa.Table(
    "alert_episodes",
    metadata,
    # One row per firing episode of an alert instance, kept in the same transaction as
    # the events that change it, so quality rollups are GROUP BYs over small rows
    # (see alert_jobs/store/episodes.py for what each column means).
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

link_uses = sa.Table(
    "alert_link_uses",
    metadata,
    # One row per action link that was used: the unique token id makes a second use
    # (a replay, a double click, two people at once) fail inside the action's own
    # transaction, on SQLite and PostgreSQL alike (see alert_jobs/store/link_uses.py).
    # token_id is a digest of the signed payload, never the token itself.
    sa.Column("token_id", sa.String(64), primary_key=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("episode", sa.Integer, nullable=False),
    sa.Column("used_by", sa.String(128), nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=False),
    sa.Index("ix_alert_link_uses_alert", "fingerprint", "episode"),
)

sessions = sa.Table(
    "alert_sessions",  # the responder pages' signed-in users (migration 0012)
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256 of the cookie
    sa.Column("username", sa.String(128), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

incidents = sa.Table(
    "alert_incidents",  # what happened in an incident, for the review (migration 0014)
    metadata,
    # One row per alert episode someone described (fingerprint + episode), or per
    # incident no rule caught (fingerprint NULL): how it was verified, whether it was a
    # false positive, the mitigation, follow-ups, whether the runbook sufficed. Every
    # change is also an ``incident`` event in alert_events (who, when, what). Kept like
    # alert_episodes: retention never trims it.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(32)),
    sa.Column("episode", sa.Integer),
    sa.Column("rule", sa.String(128)),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("detected_by", sa.Text),  # incidents without an alert: how it was noticed
    sa.Column("verified", sa.Text),
    sa.Column("false_positive", sa.Boolean),
    sa.Column("mitigation", sa.Text),
    sa.Column("follow_ups", sa.JSON, nullable=False),  # ticket links
    sa.Column("runbook_sufficient", sa.Boolean),
    sa.Column("runbook_missing", sa.Text),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("fingerprint", "episode", name="uq_alert_incidents_episode"),
    sa.Index("ix_alert_incidents_started_at", "started_at"),
    sa.Index("ix_alert_incidents_rule", "rule"),
)
