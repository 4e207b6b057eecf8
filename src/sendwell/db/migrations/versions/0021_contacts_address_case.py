"""one contact per address whatever its letter case: duplicates merged, the address hash unique

Revision ID: 0021
Revises: 0020

Contacts whose addresses differ only in case share `email_hash` (the peppered hash of the
lower-cased address). Each such group is merged into its oldest contact: sends, events,
consents, subscriptions, flags, re-engagements, outbox rows and suppressions move onto it,
tags and custom fields are united (the oldest contact's values win), and an opt-out of
any member (an unsubscribed topic) stays an opt-out. Then the hash becomes a unique key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# Tables whose rows simply move to the kept contact (no uniqueness involving contact_id).
_MOVE = ("consents", "reengagements", "outbox", "suppressions", "events")
# Tables unique on (contact_id, column): a row the kept contact already has for that value stays
# on the kept contact, the duplicate's row goes.
_UNIQUE_WITH = {"sends": "campaign_id", "subscriptions": "topic_id", "address_flags": "flag"}

_contacts = sa.table("contacts", sa.column("id", sa.Integer), sa.column("email_hash", sa.String),
                     sa.column("tags", sa.JSON), sa.column("custom", sa.JSON))


def upgrade() -> None:
    bind = op.get_bind()
    groups = bind.execute(
        sa.select(_contacts.c.email_hash).group_by(_contacts.c.email_hash).having(sa.func.count() > 1)
    ).scalars().all()
    for email_hash in groups:
        rows = bind.execute(
            sa.select(_contacts.c.id, _contacts.c.tags, _contacts.c.custom)
            .where(_contacts.c.email_hash == email_hash).order_by(_contacts.c.id)
        ).all()
        keep, others = rows[0], rows[1:]
        tags = set(keep.tags or [])
        custom: dict = {}
        for row in reversed(rows):  # the oldest contact's values win
            tags |= set(row.tags or [])
            custom.update(row.custom or {})
        for other in others:
            _merge(bind, keep.id, other.id)
        bind.execute(sa.update(_contacts).where(_contacts.c.id == keep.id).values(tags=sorted(tags), custom=custom))
    with op.batch_alter_table("contacts") as batch:
        batch.drop_index("ix_contacts_email_hash")
        batch.create_index("ix_contacts_email_hash", ["email_hash"], unique=True)


def _merge(bind: sa.Connection, keep: int, other: int) -> None:
    """Move everything of contact `other` onto contact `keep`, then delete `other`."""
    for table, column in _UNIQUE_WITH.items():
        t = sa.table(table, sa.column("id", sa.Integer), sa.column("contact_id", sa.Integer), sa.column(column))
        taken = sa.select(t.c[column]).where(t.c.contact_id == keep).scalar_subquery()
        clashes = bind.execute(
            sa.select(t.c.id, t.c[column]).where(t.c.contact_id == other, t.c[column].in_(taken))
        ).all()
        for row_id, value in clashes:
            kept_id = bind.execute(
                sa.select(t.c.id).where(t.c.contact_id == keep, t.c[column] == value)
            ).scalar_one()
            if table == "sends":
                events = sa.table("events", sa.column("send_id", sa.Integer))
                bind.execute(sa.update(events).where(events.c.send_id == row_id).values(send_id=kept_id))
            if table == "subscriptions":
                _keep_opt_out(bind, kept_id, row_id)
            bind.execute(sa.delete(t).where(t.c.id == row_id))
        bind.execute(sa.update(t).where(t.c.contact_id == other).values(contact_id=keep))
    for table in _MOVE:
        t = sa.table(table, sa.column("contact_id", sa.Integer))
        bind.execute(sa.update(t).where(t.c.contact_id == other).values(contact_id=keep))
    bind.execute(sa.delete(_contacts).where(_contacts.c.id == other))


def _keep_opt_out(bind: sa.Connection, kept_id: int, dropped_id: int) -> None:
    """The kept subscription takes the dropped one's status if that one was left (an opt-out)."""
    subs = sa.table("subscriptions", sa.column("id", sa.Integer), sa.column("status", sa.String))
    status = bind.execute(sa.select(subs.c.status).where(subs.c.id == dropped_id)).scalar_one()
    if status != "subscribed":
        bind.execute(sa.update(subs).where(subs.c.id == kept_id).values(status=status))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_index("ix_contacts_email_hash")
        batch.create_index("ix_contacts_email_hash", ["email_hash"], unique=False)
