"""Engagement reported from outside (a website, a CRM): an event, and the contact's last_engaged_at."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Contact, Event, Send

# Only positive signals. Opt-outs never come in this way: every opt-out goes through
# sendwell.optout.service.unsubscribe_contact, which writes the suppression.
ENGAGEMENT_KINDS = ("clicked", "replied", "engaged")


def record_engagement(
    session: Session,
    *,
    contact_id: int,
    kind: str,
    campaign_id: int | None = None,
    occurred_at: datetime | None = None,
    source: str = "api",
    data: dict[str, Any] | None = None,
) -> Event | None:
    """Store an engagement event and move the contact's last_engaged_at forward; None if no contact."""
    if kind not in ENGAGEMENT_KINDS:
        raise ValueError(f"kind {kind!r} is not an engagement kind (use one of {', '.join(ENGAGEMENT_KINDS)})")
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    now = datetime.now(timezone.utc)
    when = min(occurred_at or now, now)  # a clock ahead of ours must not push engagement into the future
    send_id = None
    if campaign_id is not None:
        send_id = session.scalar(select(Send.id).where(Send.campaign_id == campaign_id, Send.contact_id == contact_id))
        if send_id is None:
            campaign_id = None  # not a recipient of that campaign: keep the event, not the link
    stored: dict[str, Any] = {"source": source, "detail": dict(data or {})}
    if kind == "clicked" and send_id is not None:
        # As record_click: `first` marks a send's first click by a person, which the roll-up counts.
        stored["first"] = session.scalar(
            select(func.count()).select_from(Event)
            .where(Event.kind == "clicked", Event.send_id == send_id, Event.machine.is_(False))
        ) == 0
    event = Event(kind=kind, contact_id=contact_id, campaign_id=campaign_id, send_id=send_id, method=source[:30],
                  data=stored, occurred_at=when)
    session.add(event)
    if contact.last_engaged_at is None or contact.last_engaged_at < when:
        contact.last_engaged_at = when
    session.flush()
    return event


def list_events(
    session: Session,
    *,
    kind: str | None = None,
    contact_id: int | None = None,
    campaign_id: int | None = None,
    after: int = 0,
    limit: int = 50,
) -> list[Event]:
    """Events in id order after a cursor, filtered by kind, contact and campaign."""
    query = select(Event).where(Event.id > after).order_by(Event.id).limit(limit)
    if kind is not None:
        query = query.where(Event.kind == kind)
    if contact_id is not None:
        query = query.where(Event.contact_id == contact_id)
    if campaign_id is not None:
        query = query.where(Event.campaign_id == campaign_id)
    return list(session.scalars(query))
