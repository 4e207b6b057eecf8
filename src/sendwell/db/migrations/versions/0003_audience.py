"""audience: vocabulary table, consent wording hash and source kind, engagement index

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "vocabulary",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vocabulary")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_vocabulary_kind")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wording_hash", sa.String(length=64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("source_kind", sa.String(length=20), server_default="", nullable=False))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_contact_kind_time", ["contact_id", "kind", "occurred_at"], unique=False)
    # The B2B legitimate-interest kind got its explicit name; existing rows follow.
    op.execute("UPDATE consents SET kind = 'legitimate_interest_b2b' WHERE kind = 'legitimate_interest'")


def downgrade() -> None:
    op.execute("UPDATE consents SET kind = 'legitimate_interest' WHERE kind = 'legitimate_interest_b2b'")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_contact_kind_time")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("source_kind")
        batch_op.drop_column("wording_hash")
    op.drop_table("vocabulary")
