"""provider groups: the MX hosts of each recipient domain, looked up once and kept with an expiry

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_mx",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("mx_hosts", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_provider_mx")),
    )


def downgrade() -> None:
    op.drop_table("provider_mx")
