"""drift reference summaries

Stored reference summaries of score_drift rules (schema version 4).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_drift_references",
        sa.Column("rule", sa.String(128), primary_key=True),
        sa.Column("segment", sa.String(255), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("window_start", WHEN, nullable=False),
        sa.Column("window_end", WHEN, nullable=False),
        sa.Column("covered_seconds", sa.Float, nullable=False),
        sa.Column("settings", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("built_at", WHEN, nullable=False),
        sa.Column("run_id", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("alert_drift_references")
