"""webhook delivery log: one row per attempt to POST an event to an endpoint

Revision ID: 0014
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("outbox_id", _ID, nullable=True),
        sa.Column("endpoint", sa.String(length=2000), nullable=False),
        sa.Column("event_type", sa.String(length=50), nullable=False),
        sa.Column("event_id", _ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], name=op.f("fk_webhook_deliveries_outbox_id_outbox"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_outbox_id"), ["outbox_id"], unique=False)
        batch_op.create_index("ix_webhook_deliveries_event_type", ["event_type", "id"], unique=False)
        batch_op.create_index("ix_webhook_deliveries_status", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_status")
        batch_op.drop_index("ix_webhook_deliveries_event_type")
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_outbox_id"))
    op.drop_table("webhook_deliveries")
