"""sequence_versions: every definition a sequence has had, one row per version

Revision ID: 0036
Revises: 0035
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sequence_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("sequence_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["sequence_id"], ["sequences.id"],
                                name=op.f("fk_sequence_versions_sequence_id_sequences"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_versions")),
        sa.UniqueConstraint("sequence_id", "version", name=op.f("uq_sequence_versions_sequence_id")),
    )
    # The sequences made before versions were kept: their current definition is their version.
    op.execute("INSERT INTO sequence_versions (sequence_id, version, definition, created_at) "
               "SELECT id, version, definition, updated_at FROM sequences")


def downgrade() -> None:
    op.drop_table("sequence_versions")
