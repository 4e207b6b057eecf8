"""transactional confirmations: which admin confirmed a campaign labelled transactional, and when

Revision ID: 0032
Revises: 0031
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transactional_confirmations",
        sa.Column("campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("confirmed_by", sa.String(length=320), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_transactional_confirmations_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_transactional_confirmations")),
    )


def downgrade() -> None:
    op.drop_table("transactional_confirmations")
