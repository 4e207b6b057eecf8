"""warm-up plans and their daily allowances

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "warmup_plans",
        sa.Column("id", _ID, nullable=False),
        sa.Column("target_kind", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warmup_plans")),
    )
    op.create_table(
        "warmup_usage",
        sa.Column("id", _ID, nullable=False),
        sa.Column("plan_id", _ID, nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("provider_group", sa.String(length=50), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["warmup_plans.id"], name=op.f("fk_warmup_usage_plan_id_warmup_plans"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warmup_usage")),
        sa.UniqueConstraint("plan_id", "day", "provider_group", name=op.f("uq_warmup_usage_plan_id")),
    )
    op.create_table(
        "warmup_rankings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("plan_id", _ID, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("cutoffs", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["warmup_plans.id"],
                                name=op.f("fk_warmup_rankings_plan_id_warmup_plans"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_warmup_rankings_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warmup_rankings")),
        sa.UniqueConstraint("plan_id", "campaign_id", "day", name=op.f("uq_warmup_rankings_plan_id")),
    )
    op.create_index(op.f("ix_warmup_rankings_campaign_id"), "warmup_rankings", ["campaign_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_warmup_rankings_campaign_id"), table_name="warmup_rankings")
    op.drop_table("warmup_rankings")
    op.drop_table("warmup_usage")
    op.drop_table("warmup_plans")
