"""Contacts in bulk: export without opt-outs, GDPR erasure, counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from sendwell.contacts.fields import normalise_email
from sendwell.contacts.tabular import TableWriter
from sendwell.db.models import (
    SCOPE_ALL,
    Consent,
    Contact,
    Event,
    Signup,
    Subscription,
    Suppression,
    SuppressionReason,
)
from sendwell.db.session import overwriting_deletes
from sendwell.suppression.service import hash_email, suppress

EXPORT_COLUMNS = ("email", "first_name", "last_name", "company", "job_title", "country",
                  "region", "industry", "stage", "language", "timezone", "tags")


def export_contacts(
    session: Session,
    *,
    path: Path,
    fmt: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write contacts to CSV or XLSX, leaving suppressed addresses out (rule 17: never transfer opt-outs).

    Cells that a spreadsheet would run as a formula are neutralised (OWASP CSV injection).
    """
    suppressed = select(Suppression.email_hash).where(Suppression.scope == SCOPE_ALL)
    query = select(Contact).where(Contact.email_hash.not_in(suppressed)).order_by(Contact.id)
    writer = TableWriter(path, list(EXPORT_COLUMNS), fmt=fmt)
    count = 0
    try:
        for contact in session.scalars(query.execution_options(yield_per=1000)):
            writer.write([
                ";".join(contact.tags or []) if col == "tags" else str(getattr(contact, col) or "")
                for col in EXPORT_COLUMNS
            ])
            count += 1
            if on_progress is not None and count % 1000 == 0:
                on_progress(count)
    except BaseException:
        writer.abort()
        raise
    writer.finish()
    return count


# Keys of event data that may hold what a person wrote or an address (GDPR Art 4(1)).
_PII_DATA_KEYS = frozenset({"text", "email", "address", "recipient", "recipients", "from", "name", "comment",
                            "signup_ip", "signup_user_agent"})


@dataclass(frozen=True)
class ErasureResult:
    found: bool
    email_hash: str
    suppression_reason: str
    events_scrubbed: int

    def as_dict(self) -> dict[str, Any]:
        return {"found": self.found, "email_hash": self.email_hash,
                "suppression_reason": self.suppression_reason, "events_scrubbed": self.events_scrubbed}


def erase_contact(session: Session, *, email: str, pepper: bytes, now: datetime | None = None) -> ErasureResult:
    """GDPR Art 17: delete a person's data, keeping only the peppered hash on the suppression list.

    The contact row goes, and with it (by foreign keys) consents, subscriptions and sends;
    events stay for the statistics, without the contact id, IP, user agent or free text.
    Pending signups of the address go too; confirmed ones keep no more than their form's count.
    A suppression that already exists keeps its reason (an unsubscribe stays an unsubscribe);
    otherwise the reason is `erased`. ICO: suppress, do not delete, so the opt-out survives.
    """
    with overwriting_deletes(session):
        return _erase(session, email=email, pepper=pepper, now=now or datetime.now(timezone.utc))


def _erase(session: Session, *, email: str, pepper: bytes, now: datetime) -> ErasureResult:
    try:
        address = normalise_email(email)
    except ValueError:
        address = email.strip()
    email_hash = hash_email(pepper, address)
    # Every stored spelling of the address (the hash ignores case) is the same person.
    contacts = session.scalars(
        select(Contact).where((Contact.email == address) | (Contact.email_hash == email_hash))
    ).all()
    scrubbed = 0
    for contact in contacts:
        events = session.scalars(select(Event).where(Event.contact_id == contact.id)).all()
        for event in events:
            event.contact_id = None
            event.ip = ""
            event.user_agent = ""
            event.data = {k: v for k, v in (event.data or {}).items() if k not in _PII_DATA_KEYS}
        scrubbed += len(events)
        session.execute(update(Suppression).where(Suppression.contact_id == contact.id).values(contact_id=None))
        session.execute(delete(Consent).where(Consent.contact_id == contact.id))
        session.execute(delete(Subscription).where(Subscription.contact_id == contact.id))
        session.flush()
        session.delete(contact)
    _erase_signups(session, email_hash=email_hash)
    suppress(session, email_hash=email_hash, reason=SuppressionReason.ERASED.value, scope=SCOPE_ALL)
    session.add(Event(kind="suppressed", data={"reason": SuppressionReason.ERASED.value, "erasure": True},
                      occurred_at=now))
    session.flush()
    reason = session.scalar(
        select(Suppression.reason).where(Suppression.email_hash == email_hash, Suppression.scope == SCOPE_ALL)
    )
    return ErasureResult(found=bool(contacts), email_hash=email_hash,
                         suppression_reason=reason or SuppressionReason.ERASED.value, events_scrubbed=scrubbed)


def _erase_signups(session: Session, *, email_hash: str) -> None:
    """Delete the address's unconfirmed signups; strip confirmed ones down to their form's count."""
    # A pending signup holds the address, names and IP the person typed, and its link could
    # still confirm: it goes. A confirmed one stays only as a number in its form's statistics.
    session.execute(delete(Signup).where(Signup.email_hash == email_hash, Signup.confirmed_at.is_(None))
                    .execution_options(synchronize_session=False))
    session.execute(update(Signup).where(Signup.email_hash == email_hash)
                    .values(email="", fields={}, ip="", user_agent="", contact_id=None)
                    .execution_options(synchronize_session=False))


def count_contacts(session: Session) -> int:
    """How many contacts are stored."""
    return session.scalar(select(func.count()).select_from(Contact)) or 0
