"""alert quality

One row per alert episode, backfilled from the existing events (schema version 6).

The backfill is :func:`alert_jobs.store.episodes.backfill`, which the live code and
its tests share; it reads and writes only columns that exist at this revision, and
must keep doing so (or be frozen here) if a later revision changes these tables.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alert_jobs.store.episodes import backfill

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_episodes",
        sa.Column("fingerprint", sa.String(32), primary_key=True),
        sa.Column("episode", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("fired_at", WHEN, nullable=False),
        sa.Column("first_notified_at", WHEN),
        sa.Column("first_ack_at", WHEN),
        sa.Column("first_response_at", WHEN),
        sa.Column("resolved_at", WHEN),
        sa.Column("ack_seconds", sa.Float),
        sa.Column("response_seconds", sa.Float),
        sa.Column("resolve_seconds", sa.Float),
        sa.Column("outcome", sa.String(32)),
        sa.Column("outcome_by", sa.String(128)),
        sa.Column("notifications", sa.Integer, nullable=False),
        sa.Column("pages", sa.Integer, nullable=False),
        sa.Column("flap", sa.Boolean, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_alert_episodes_fired_at", "alert_episodes", ["fired_at"])
    op.create_index("ix_alert_episodes_ack", "alert_episodes",
                    ["day", "rule", "severity", "ack_seconds"])
    op.create_index("ix_alert_episodes_response", "alert_episodes",
                    ["day", "rule", "severity", "response_seconds"])
    op.create_index("ix_alert_episodes_resolve", "alert_episodes",
                    ["day", "rule", "severity", "resolve_seconds", "ack_seconds", "outcome",
                     "notifications", "pages", "flap"])
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("alert_episodes")
