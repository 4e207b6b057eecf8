"""cached sender-domain check results

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_checks",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocking", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_domain_checks")),
    )
    op.create_index(op.f("ix_domain_checks_domain"), "domain_checks", ["domain"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_domain_checks_domain"), table_name="domain_checks")
    op.drop_table("domain_checks")
