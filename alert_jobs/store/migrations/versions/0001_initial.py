"""initial timeline schema

The core timeline: alert state, events, evaluations, silences, the outbox and rule
settings (schema version 1 of the pre-alembic releases).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_alerts",
        sa.Column("fingerprint", sa.String(32), primary_key=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("episode", sa.Integer, nullable=False),
        sa.Column("active_since", WHEN),
        sa.Column("fired_at", WHEN),
        sa.Column("recovering_since", WHEN),
        sa.Column("resolved_at", WHEN),
        sa.Column("last_notified_at", WHEN),
        sa.Column("last_suppressed_at", WHEN),
        sa.Column("notified_firing", sa.Boolean, nullable=False),
        sa.Column("notified_severity", sa.String(16)),
        sa.Column("notify_seq", sa.Integer, nullable=False),
        sa.Column("acked_at", WHEN),
        sa.Column("acked_by", sa.String(128)),
        sa.Column("ack_note", sa.Text),
        sa.Column("ack_outcome", sa.String(32)),
        sa.Column("snoozed_until", WHEN),
        sa.Column("escalation_step", sa.Integer, nullable=False),
        sa.Column("last_status", sa.String(16)),
        sa.Column("last_value", sa.Float),
        sa.Column("last_summary", sa.Text, nullable=False),
        sa.Column("last_eval_at", WHEN),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_alert_alerts_rule", "alert_alerts", ["rule"])
    op.create_table(
        "alert_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("fingerprint", sa.String(32)),
        sa.Column("rule", sa.String(128)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_alert_events_fingerprint", "alert_events", ["fingerprint"])
    op.create_index("ix_alert_events_rule", "alert_events", ["rule"])
    op.create_index("ix_alert_events_run_id", "alert_events", ["run_id"])
    op.create_index("ix_alert_events_at", "alert_events", ["at"])
    op.create_index("ix_alert_events_kind_at", "alert_events", ["kind", "at"])
    op.create_table(
        "alert_evaluations",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("expected", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("state_after", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_alert_evaluations_rule_at", "alert_evaluations", ["rule", "at"])
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("starts_at", WHEN, nullable=False),
        sa.Column("ends_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_alert_silences_ends_at", "alert_silences", ["ends_at"])
    op.create_table(
        "alert_outbox",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(32)),
        sa.Column("rule", sa.String(128)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("claimed_until", WHEN),
        sa.Column("claim_token", sa.String(36)),
        sa.Column("delivered_at", WHEN),
        sa.Column("failed_at", WHEN),
        sa.Column("last_error", sa.Text),
        sa.Column("run_id", sa.String(64)),
        sa.UniqueConstraint("receiver", "dedup_key", name="uq_alert_outbox_receiver_dedup"),
    )
    op.create_index("ix_alert_outbox_due", "alert_outbox",
                    ["delivered_at", "failed_at", "next_attempt_at"])
    op.create_table(
        "alert_rule_settings",
        sa.Column("rule", sa.String(128), primary_key=True),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("changed_at", WHEN, nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("alert_rule_settings", "alert_outbox", "alert_silences",
                  "alert_evaluations", "alert_events", "alert_alerts"):
        op.drop_table(table)
