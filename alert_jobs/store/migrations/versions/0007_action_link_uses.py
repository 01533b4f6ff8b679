"""action link uses

One row per used action link (schema version 7): a link acts once, so its second
use finds this row and changes nothing. Nothing to backfill: links used before this
revision were not recorded, and the episode check refuses the old ones anyway.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_link_uses",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("episode", sa.Integer, nullable=False),
        sa.Column("used_by", sa.String(128), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alert_link_uses_alert", "alert_link_uses", ["fingerprint", "episode"])


def downgrade() -> None:
    op.drop_table("alert_link_uses")
