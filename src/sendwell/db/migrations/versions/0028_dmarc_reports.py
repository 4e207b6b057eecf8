"""DMARC aggregate reports and their records

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in with its tables


def downgrade() -> None:
    pass
