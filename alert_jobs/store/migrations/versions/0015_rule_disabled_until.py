"""rules disabled for a while

Schema version 15: ``alert_rule_settings.disabled_until`` (nullable). A rule disabled
from a message's link (or ``alert-jobs disable RULE --for 1d``) may be disabled for a
while only; once the time has passed it counts as enabled again, with no job needed to
flip it back (``alert_jobs/store/rule_settings.py``). NULL keeps the old meaning,
disabled until someone enables it: existing rows need no backfill.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLE = "alert_rule_settings"
COLUMN = "disabled_until"


def _has_column() -> bool:
    return COLUMN in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}


def upgrade() -> None:
    if not _has_column():  # safe to run twice
        with op.batch_alter_table(TABLE) as batch:
            batch.add_column(sa.Column(COLUMN, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    if _has_column():
        with op.batch_alter_table(TABLE) as batch:
            batch.drop_column(COLUMN)
