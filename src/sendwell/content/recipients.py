"""Per-recipient facts the footer needs (consent kind, data source), read in one query per batch."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from sendwell.content.footer import RecipientFacts
from sendwell.db.models import Consent, Contact

# Which active consent speaks for the contact when there are several: the one giving the
# most (express consent lifts the US advertisement notice, CAN-SPAM 15 USC 7702(1)).
_RANK = {"express": 0, "soft_opt_in": 1, "implied_purchase": 2, "implied_inquiry": 3, "legitimate_interest": 4}


def recipient_facts(session: Session, *, contact_ids: list[int], now: datetime | None = None) -> dict[int, RecipientFacts]:
    """Facts per contact id: the strongest unwithdrawn, unexpired consent and the data source."""
    now = now or datetime.now(timezone.utc)
    if not contact_ids:
        return {}
    sources = dict(session.execute(select(Contact.id, Contact.source).where(Contact.id.in_(contact_ids))).all())
    best: dict[int, tuple[int, str, str]] = {}
    rows = session.execute(
        select(Consent.contact_id, Consent.kind, Consent.source).where(
            Consent.contact_id.in_(contact_ids),
            Consent.withdrawn_at.is_(None),
            or_(Consent.expires_at.is_(None), Consent.expires_at > now),
        )
    ).all()
    for contact_id, kind, source in rows:
        rank = _RANK.get(kind, 9)
        if contact_id not in best or rank < best[contact_id][0]:
            best[contact_id] = (rank, kind, source or "")
    facts: dict[int, RecipientFacts] = {}
    for contact_id in contact_ids:
        _, kind, consent_source = best.get(contact_id, (9, None, ""))
        source = sources.get(contact_id) or consent_source.removeprefix("import:")
        facts[contact_id] = RecipientFacts(consent_kind=kind, data_source=source or "")
    return facts
