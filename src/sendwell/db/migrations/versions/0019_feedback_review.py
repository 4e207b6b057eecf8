"""feedback review: bounces and complaints not tied to a mail we sent, kept for a person

Revision ID: 0019
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback_reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("why", sa.String(length=40), nullable=False),
        sa.Column("raw_ref", sa.String(length=100), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_reviews")),
    )
    op.create_index(op.f("ix_feedback_reviews_received_at"), "feedback_reviews", ["received_at"], unique=False)
    op.create_index(op.f("ix_feedback_reviews_raw_ref"), "feedback_reviews", ["raw_ref"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_reviews_raw_ref"), table_name="feedback_reviews")
    op.drop_index(op.f("ix_feedback_reviews_received_at"), table_name="feedback_reviews")
    op.drop_table("feedback_reviews")
