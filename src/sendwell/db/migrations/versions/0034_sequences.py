"""sequences: lifecycle sequences, their enrollments, one row per step done, and their step campaigns

Revision ID: 0034
Revises: 0033
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sequences",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("reentry_days", sa.Integer(), nullable=True),
        sa.Column("events_seen", sa.BigInteger(), nullable=False),
        sa.Column("contacts_seen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequences")),
        sa.UniqueConstraint("name", name=op.f("uq_sequences_name")),
    )
    op.create_table(
        "sequence_enrollments",
        sa.Column("id", ID, nullable=False),
        sa.Column("sequence_id", ID, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("next_at", WHEN, nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("exited_reason", sa.String(length=40), nullable=False),
        sa.Column("wait_reason", sa.String(length=40), nullable=False),
        sa.Column("entered_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["sequence_id"], ["sequences.id"],
                                name=op.f("fk_sequence_enrollments_sequence_id_sequences"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name=op.f("fk_sequence_enrollments_contact_id_contacts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_enrollments")),
        sa.UniqueConstraint("sequence_id", "contact_id", "round", name=op.f("uq_sequence_enrollments_sequence_id")),
    )
    op.create_index(op.f("ix_sequence_enrollments_contact_id"), "sequence_enrollments", ["contact_id"], unique=False)
    op.create_index("ix_sequence_enrollments_state_next_at", "sequence_enrollments", ["state", "next_at"],
                    unique=False)
    op.create_table(
        "sequence_step_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("enrollment_id", ID, nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("outcome", sa.String(length=100), nullable=False),
        sa.Column("send_id", ID, nullable=True),
        sa.Column("wait_reason", sa.String(length=40), nullable=False),
        sa.Column("done_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["enrollment_id"], ["sequence_enrollments.id"],
                                name=op.f("fk_sequence_step_runs_enrollment_id_sequence_enrollments"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"], name=op.f("fk_sequence_step_runs_send_id_sends"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_step_runs")),
        sa.UniqueConstraint("enrollment_id", "step_id", name=op.f("uq_sequence_step_runs_enrollment_id")),
    )
    op.create_table(
        "sequence_step_campaigns",
        sa.Column("id", ID, nullable=False),
        sa.Column("sequence_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.ForeignKeyConstraint(["sequence_id"], ["sequences.id"],
                                name=op.f("fk_sequence_step_campaigns_sequence_id_sequences"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_sequence_step_campaigns_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_step_campaigns")),
        sa.UniqueConstraint("sequence_id", "version", "step_id", "round",
                            name=op.f("uq_sequence_step_campaigns_sequence_id")),
    )
    op.create_index(op.f("ix_sequence_step_campaigns_campaign_id"), "sequence_step_campaigns", ["campaign_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sequence_step_campaigns_campaign_id"), table_name="sequence_step_campaigns")
    op.drop_table("sequence_step_campaigns")
    op.drop_table("sequence_step_runs")
    op.drop_index("ix_sequence_enrollments_state_next_at", table_name="sequence_enrollments")
    op.drop_index(op.f("ix_sequence_enrollments_contact_id"), table_name="sequence_enrollments")
    op.drop_table("sequence_enrollments")
    op.drop_table("sequences")
