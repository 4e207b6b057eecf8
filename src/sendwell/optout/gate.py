"""The last check before a marketing mail is handed to SMTP, serialised with opt-outs.

Batch claiming re-checks eligibility, but a batch claimed before an opt-out would still go
out after the person's POST returned. The deliverer therefore opens a short transaction per
mail around the SMTP hand-off and calls `hold_for_send` first: on PostgreSQL it takes a
share lock on the contact row, which `unsubscribe_contact`'s FOR UPDATE waits for; on SQLite
the transaction is BEGIN IMMEDIATE, so it holds the single write lock. Either way an opt-out
commits entirely before or entirely after the hand-off: no mail leaves after the 200.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.db.models import SCOPE_ALL, Contact, Suppression
from sendwell.policy.eligibility import SUPPRESSION_SKIP


def hold_for_send(session: Session, *, contact_id: int, email_hash: str) -> str | None:
    """Lock the contact against a concurrent opt-out; the skip reason if it must not be mailed."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Contact.id).where(Contact.id == contact_id).with_for_update(read=True))
    reason = session.scalar(
        select(Suppression.reason)
        .where(Suppression.email_hash == email_hash, Suppression.scope == SCOPE_ALL)
        .order_by(Suppression.id).limit(1)
    )
    return SUPPRESSION_SKIP.get(reason, "suppressed") if reason else None
