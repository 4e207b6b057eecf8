"""insight roll-up: counters, cursor, campaigns.delivered_rolled_up_at

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "insight_counters",
        sa.Column("id", _ID, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("dimension", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("count", _ID, nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_insight_counters_campaign_id_campaigns"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_counters")),
        sa.UniqueConstraint("campaign_id", "dimension", "value", "metric", name=op.f("uq_insight_counters_campaign_id")),
    )
    op.create_table(
        "insight_cursors",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("last_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_insight_cursors")),
    )
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("delivered_rolled_up_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("delivered_rolled_up_at")
    op.drop_table("insight_cursors")
    op.drop_table("insight_counters")
