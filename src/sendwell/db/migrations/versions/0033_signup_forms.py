"""signup forms with double opt-in: the forms and the signups waiting for (or given) confirmation

Revision ID: 0033
Revises: 0032
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "signup_forms",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("consent_texts", sa.JSON(), nullable=False),
        sa.Column("thanks_text", sa.Text(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_forms")),
    )
    op.create_table(
        "signups",
        sa.Column("id", _ID, nullable=False),
        sa.Column("form_id", _ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("consent_version", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contact_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(["form_id"], ["signup_forms.id"],
                                name=op.f("fk_signups_form_id_signup_forms"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name=op.f("fk_signups_contact_id_contacts"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signups")),
    )
    for column in ("form_id", "email_hash", "ip", "created_at", "expires_at"):
        op.create_index(op.f(f"ix_signups_{column}"), "signups", [column], unique=False)


def downgrade() -> None:
    for column in ("form_id", "email_hash", "ip", "created_at", "expires_at"):
        op.drop_index(op.f(f"ix_signups_{column}"), table_name="signups")
    op.drop_table("signups")
    op.drop_table("signup_forms")
