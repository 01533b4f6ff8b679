"""incident records

Schema version 14: ``alert_incidents`` holds what responders said about an alert
episode (how it was verified, false positive or not, mitigation, follow-ups, whether the
runbook sufficed) and incidents no rule caught (``fingerprint`` NULL), for the monthly
review and postmortems (``alert_jobs/store/incidents.py``). A new table: nothing to
backfill.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(32)),
        sa.Column("episode", sa.Integer),
        sa.Column("rule", sa.String(128)),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN),
        sa.Column("detected_by", sa.Text),
        sa.Column("verified", sa.Text),
        sa.Column("false_positive", sa.Boolean),
        sa.Column("mitigation", sa.Text),
        sa.Column("follow_ups", sa.JSON, nullable=False),
        sa.Column("runbook_sufficient", sa.Boolean),
        sa.Column("runbook_missing", sa.Text),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.UniqueConstraint("fingerprint", "episode", name="uq_alert_incidents_episode"),
    )
    op.create_index("ix_alert_incidents_started_at", "alert_incidents", ["started_at"])
    op.create_index("ix_alert_incidents_rule", "alert_incidents", ["rule"])


def downgrade() -> None:
    op.drop_index("ix_alert_incidents_rule", table_name="alert_incidents")
    op.drop_index("ix_alert_incidents_started_at", table_name="alert_incidents")
    op.drop_table("alert_incidents")
