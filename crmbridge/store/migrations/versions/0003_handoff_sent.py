"""``leads.handoff_sent_at``: when a handoff was sent to sales and not yet recorded, so a handoff
sent again after a crash updates the lead it may have made instead of writing over what sales
did with it meanwhile.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmbridge.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.add_column(sa.Column("handoff_sent_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch_op:
        batch_op.drop_column("handoff_sent_at")
