"""outbox by run

An index on ``alert_outbox.run_id`` (schema version 9): a rule run delivers what it
raised (``deliver(raised_by=run_id)`` claims the rows whose ``run_id`` is that run), and
without the index every such claim would scan the outbox, which keeps delivered rows.
Nothing to backfill.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alert_outbox_run_id", "alert_outbox", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_outbox_run_id", table_name="alert_outbox")
