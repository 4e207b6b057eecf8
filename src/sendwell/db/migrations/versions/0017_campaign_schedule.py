"""campaign schedule: the time a scheduled campaign starts

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f("ix_campaigns_scheduled_at"), ["scheduled_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_index(batch.f("ix_campaigns_scheduled_at"))
        batch.drop_column("scheduled_at")
