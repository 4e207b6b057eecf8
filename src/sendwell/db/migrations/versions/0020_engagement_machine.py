"""engagement by machines: each open and click carries a machine verdict and its reason

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("machine", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("machine_reason", sa.String(length=30), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("machine_reason")
        batch.drop_column("machine")
