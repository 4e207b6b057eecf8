"""warm-up plans and their daily allowances

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in with its tables


def downgrade() -> None:
    pass
