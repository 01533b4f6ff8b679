"""redis quota samples and windows

Redis samples and per-window usage, so counting survives restarts (schema version 2).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_redis_samples",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("server_id", sa.String(64), nullable=False),
        sa.Column("uptime_seconds", sa.Float),
        sa.Column("total_commands", sa.Float, nullable=False),
        sa.Column("increment", sa.Float, nullable=False),
        sa.Column("reset", sa.Boolean, nullable=False),
        sa.Column("counted", sa.Boolean, nullable=False),
        sa.Column("keyspace_hits", sa.Float),
        sa.Column("keyspace_misses", sa.Float),
        sa.Column("evicted_keys", sa.Float),
        sa.Column("rejected_connections", sa.Float),
        sa.Column("commands_spent", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64)),
    )
    op.create_index("ix_alert_redis_samples_target_at", "alert_redis_samples",
                    ["target", "at"])
    op.create_table(
        "alert_redis_windows",
        sa.Column("target", sa.String(128), primary_key=True),
        sa.Column("window_start", WHEN, primary_key=True),
        sa.Column("window_end", WHEN, nullable=False),
        sa.Column("window_kind", sa.String(8), nullable=False),
        sa.Column("used", sa.Float, nullable=False),
        sa.Column("partial", sa.Boolean, nullable=False),
        sa.Column("resets", sa.Integer, nullable=False),
        sa.Column("last_at", WHEN, nullable=False),
        sa.Column("last_total", sa.Float, nullable=False),
        sa.Column("last_server_id", sa.String(64), nullable=False),
        sa.Column("last_uptime", sa.Float),
        sa.Column("updated_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_redis_windows")
    op.drop_table("alert_redis_samples")
