"""heartbeats

Heartbeat checks (with their indexed next deadline) and their bounded ping log
(schema version 5).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_heartbeats",
        sa.Column("slug", sa.String(128), primary_key=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("declared", sa.Boolean, nullable=False),
        sa.Column("config_hash", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("period_seconds", sa.Float),
        sa.Column("cron", sa.String(128)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("grace_seconds", sa.Float, nullable=False),
        sa.Column("max_duration_seconds", sa.Float),
        sa.Column("manual_resume", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_ping", WHEN),
        sa.Column("last_signal", sa.String(16)),
        sa.Column("last_exit_code", sa.Integer),
        sa.Column("last_start", WHEN),
        sa.Column("last_start_rid", sa.String(64)),
        sa.Column("last_duration_seconds", sa.Float),
        sa.Column("open_problems", sa.String(64), nullable=False),
        sa.Column("alert_after", WHEN),
        sa.Column("n_pings", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_alert_heartbeats_alert_after", "alert_heartbeats", ["alert_after"])
    op.create_table(
        "alert_heartbeat_pings",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("slug", sa.String(128), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("rid", sa.String(64)),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(256), nullable=False),
    )
    op.create_index("ix_alert_heartbeat_pings_slug_id", "alert_heartbeat_pings",
                    ["slug", "id"])


def downgrade() -> None:
    op.drop_table("alert_heartbeat_pings")
    op.drop_table("alert_heartbeats")
