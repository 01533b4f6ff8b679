"""baselines

Backfilled points and adopted level shifts of rules with a learned baseline (schema
version 11; see ``alert_jobs/store/baselines.py``). New tables: nothing to backfill.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_baseline_points",
        sa.Column("fingerprint", sa.String(32), primary_key=True),
        sa.Column("at", WHEN, primary_key=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("value", sa.Float),
    )
    op.create_table(
        "alert_baselines",
        sa.Column("fingerprint", sa.String(32), primary_key=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("shifts", sa.JSON, nullable=False),
        sa.Column("backfill_before", WHEN),
        sa.Column("backfill_done", sa.Integer, nullable=False),
        sa.Column("backfill_total", sa.Integer, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_alert_baselines_rule", "alert_baselines", ["rule"])


def downgrade() -> None:
    op.drop_index("ix_alert_baselines_rule", table_name="alert_baselines")
    op.drop_table("alert_baselines")
    op.drop_table("alert_baseline_points")
