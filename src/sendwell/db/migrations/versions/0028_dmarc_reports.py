"""DMARC aggregate reports and their records

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dmarc_reports",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_name", sa.String(length=200), nullable=False),
        sa.Column("org_email", sa.String(length=320), nullable=False),
        sa.Column("report_id", sa.String(length=200), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("begin_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmarc_reports")),
        sa.UniqueConstraint("org_name", "report_id", name=op.f("uq_dmarc_reports_org_name")),
    )
    op.create_index(op.f("ix_dmarc_reports_end_at"), "dmarc_reports", ["end_at"], unique=False)
    op.create_table(
        "dmarc_records",
        sa.Column("id", _ID, nullable=False),
        sa.Column("report_id", _ID, nullable=False),
        sa.Column("source_ip", sa.String(length=45), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("disposition", sa.String(length=20), nullable=False),
        sa.Column("dkim_aligned", sa.Boolean(), nullable=False),
        sa.Column("spf_aligned", sa.Boolean(), nullable=False),
        sa.Column("dkim_pass", sa.Boolean(), nullable=False),
        sa.Column("spf_pass", sa.Boolean(), nullable=False),
        sa.Column("header_from", sa.String(length=253), nullable=False),
        sa.Column("envelope_from", sa.String(length=253), nullable=False),
        sa.Column("auth", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["dmarc_reports.id"],
                                name=op.f("fk_dmarc_records_report_id_dmarc_reports"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmarc_records")),
    )
    op.create_index(op.f("ix_dmarc_records_report_id"), "dmarc_records", ["report_id"], unique=False)
    op.create_index(op.f("ix_dmarc_records_source_ip"), "dmarc_records", ["source_ip"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dmarc_records_source_ip"), table_name="dmarc_records")
    op.drop_index(op.f("ix_dmarc_records_report_id"), table_name="dmarc_records")
    op.drop_table("dmarc_records")
    op.drop_index(op.f("ix_dmarc_reports_end_at"), table_name="dmarc_reports")
    op.drop_table("dmarc_reports")
