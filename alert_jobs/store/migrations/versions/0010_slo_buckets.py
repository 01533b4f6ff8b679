"""slo buckets

Per-bucket good/total event counts of each SLO with running totals (schema version
10), so that a burn rate over 30 days is two indexed lookups (see
``alert_jobs/families/slo/store.py``). A new table: nothing to backfill.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_slo_buckets",
        sa.Column("rule", sa.String(128), primary_key=True),
        sa.Column("end", WHEN, primary_key=True),
        sa.Column("start", WHEN, nullable=False),
        sa.Column("good", sa.Float, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("has_data", sa.Boolean, nullable=False),
        sa.Column("cum_good", sa.Float, nullable=False),
        sa.Column("cum_total", sa.Float, nullable=False),
        sa.Column("cum_covered", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("alert_slo_buckets")
