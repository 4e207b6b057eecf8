"""hygiene: re-engagement rows, address flags, hygiene runs, scheduler leases

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reengagements",
        sa.Column("id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("inactive_since", _TS, nullable=False),
        sa.Column("entered_at", _TS, nullable=False),
        sa.Column("campaign_id", _ID, nullable=True),
        sa.Column("asked_at", _TS, nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_reengagements_contact_id_contacts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_reengagements_campaign_id_campaigns"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reengagements")),
    )
    op.create_index(op.f("ix_reengagements_contact_id"), "reengagements", ["contact_id"])
    op.create_index("ix_reengagements_open", "reengagements", ["resolved_at", "contact_id"])
    op.create_table(
        "address_flags",
        sa.Column("id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("flag", sa.String(length=30), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("flagged_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_address_flags_contact_id_contacts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address_flags")),
        sa.UniqueConstraint("contact_id", "flag", name=op.f("uq_address_flags_contact_id")),
    )
    op.create_table(
        "hygiene_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("as_of", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hygiene_runs")),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("next_run_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    op.drop_table("hygiene_runs")
    op.drop_table("address_flags")
    op.drop_index("ix_reengagements_open", table_name="reengagements")
    op.drop_index(op.f("ix_reengagements_contact_id"), table_name="reengagements")
    op.drop_table("reengagements")
