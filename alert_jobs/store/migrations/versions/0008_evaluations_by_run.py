"""evaluations by run

An index on ``alert_evaluations.run_id`` (schema version 8), so ``alert-jobs timeline
--run-id R`` lists every evaluation a run made, including those that changed nothing,
without scanning a table that grows with every evaluation. Nothing to backfill.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alert_evaluations_run_id", "alert_evaluations", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_evaluations_run_id", table_name="alert_evaluations")
