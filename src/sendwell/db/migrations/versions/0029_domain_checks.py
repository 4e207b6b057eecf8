"""cached sender-domain check results

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in with its tables


def downgrade() -> None:
    pass
