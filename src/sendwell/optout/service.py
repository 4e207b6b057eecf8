"""Opting out: every method ends here, and the suppression is written in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendwell.db.models import (
    SCOPE_ALL,
    Consent,
    Contact,
    Event,
    Subscription,
    SuppressionReason,
)
from sendwell.suppression.service import suppress

METHODS = ("one_click", "page", "preference_center", "mailto", "reply", "complaint", "bounce", "admin", "api")


@dataclass(frozen=True)
class OptOutResult:
    contact_id: int
    is_new: bool  # False when the contact had already opted out (idempotent repeat)
    unsubscribed_at: datetime


def unsubscribe_contact(
    session: Session,
    *,
    contact_id: int,
    method: str,
    campaign_id: int | None = None,
    ip: str = "",
    user_agent: str = "",
    now: datetime | None = None,
) -> OptOutResult | None:
    """Suppress all marketing to a contact; None if the contact no longer exists.

    Idempotent: a repeat keeps the first suppression and records no second event
    (COMPLIANCE rule 7). The caller commits before answering the person (rule 10).
    """
    if method not in METHODS:
        raise ValueError(f"unknown opt-out method {method!r}")
    now = now or datetime.now(timezone.utc)
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    is_new = suppress(
        session,
        email_hash=contact.email_hash,
        reason=SuppressionReason.UNSUBSCRIBE.value,
        scope=SCOPE_ALL,
        contact_id=contact.id,
        campaign_id=campaign_id,
    )
    if is_new:
        session.add(
            Event(
                kind="unsubscribed",
                contact_id=contact.id,
                campaign_id=campaign_id,
                method=method,
                ip=ip[:64],
                user_agent=user_agent[:500],
                occurred_at=now,
            )
        )
        # GDPR Art 7(3): the opt-out withdraws every consent on record.
        session.execute(
            update(Consent)
            .where(Consent.contact_id == contact.id, Consent.withdrawn_at.is_(None))
            .values(withdrawn_at=now)
        )
        session.execute(
            update(Subscription)
            .where(Subscription.contact_id == contact.id)
            .values(status="unsubscribed", updated_at=now)
        )
    session.flush()
    first = session.scalar(
        select(Event.occurred_at)
        .where(Event.contact_id == contact.id, Event.kind == "unsubscribed")
        .order_by(Event.id)
        .limit(1)
    )
    return OptOutResult(contact_id=contact.id, is_new=is_new, unsubscribed_at=first or now)
