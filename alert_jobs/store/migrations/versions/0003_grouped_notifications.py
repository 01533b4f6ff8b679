"""grouped notifications

Notifications are queued per route, receiver and group labels and flushed as one
message per group (schema version 3).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_notify_queue",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("group_key", sa.String(512), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("run_id", sa.String(64)),
    )
    op.create_index("ix_alert_notify_queue_group", "alert_notify_queue",
                    ["receiver", "group_key"])
    op.create_table(
        "alert_groups",
        sa.Column("receiver", sa.String(128), primary_key=True),
        sa.Column("group_key", sa.String(512), primary_key=True),
        sa.Column("route_id", sa.String(64), nullable=False),
        sa.Column("group_labels", sa.JSON, nullable=False),
        sa.Column("group_interval_seconds", sa.Float, nullable=False),
        sa.Column("first_at", WHEN, nullable=False),
        sa.Column("last_flush_at", WHEN),
        sa.Column("next_flush_at", WHEN),
        sa.Column("flush_seq", sa.Integer, nullable=False),
        sa.Column("firing", sa.JSON, nullable=False),
    )
    op.create_index("ix_alert_groups_next_flush_at", "alert_groups", ["next_flush_at"])


def downgrade() -> None:
    op.drop_table("alert_groups")
    op.drop_table("alert_notify_queue")
