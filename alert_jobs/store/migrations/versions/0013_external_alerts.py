"""external alerts

Schema version 13, for alerts pushed to ``POST /api/v2/alerts`` (the ``external``
family): ``alert_external_alerts`` keeps each pushed alert that is still open, with its
``endsAt``, so one not sent again before it ends is resolved (see
``alert_jobs/families/external/store.py``). A new table: nothing to backfill.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_external_alerts",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_label", sa.Text),
        sa.Column("annotations", sa.JSON, nullable=False),
        sa.Column("generator_url", sa.Text, nullable=False),
        sa.Column("starts_at", WHEN, nullable=False),
        sa.Column("ends_at", WHEN, nullable=False),
        sa.Column("timeout", sa.Boolean, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("pushed_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_alert_external_alerts_fingerprint", "alert_external_alerts",
                    ["fingerprint"])
    op.create_index("ix_alert_external_alerts_ends_at", "alert_external_alerts", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_external_alerts_ends_at", table_name="alert_external_alerts")
    op.drop_index("ix_alert_external_alerts_fingerprint", table_name="alert_external_alerts")
    op.drop_table("alert_external_alerts")
