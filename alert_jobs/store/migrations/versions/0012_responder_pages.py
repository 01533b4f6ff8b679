"""responder pages

Schema version 12, for the responder's pages of ``alert-jobs serve``:

* ``alert_alerts.last_expected``: what the last evaluation expected, shown beside the
  value on the alerts page (existing rows get ``''`` until their next evaluation);
* ``alert_sessions``: signed-in users' sessions. Only a SHA-256 of each session token
  is stored, so a copy of the database signs nobody in.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("alert_alerts", sa.Column("last_expected", sa.Text, nullable=False,
                                            server_default=""))
    op.create_table(
        "alert_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
    )
    op.create_index("ix_alert_sessions_expires_at", "alert_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_sessions_expires_at", table_name="alert_sessions")
    op.drop_table("alert_sessions")
    with op.batch_alter_table("alert_alerts") as batch:
        batch.drop_column("last_expected")
