"""Test data for the admin: delivered campaigns with opt-outs and complaints over several days."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sendwell.db.models import Campaign, Event, Send
from tests.helpers import make_contact

XSS = "<script>alert(1)</script>"


def seed_history(session, *, days: int = 5, per_day: int = 60, comment: str = "Too often " + XSS) -> Campaign:
    """One finished campaign delivered over `days` days; each day some unsubscribe or complain."""
    start = datetime(2026, 11, 1, 9, tzinfo=timezone.utc)
    campaign = Campaign(name="Autumn LED panels", subject="New panels", html="<p>Hi</p>", status="finished",
                        finished_at=start + timedelta(days=days))
    session.add(campaign)
    session.flush()
    for day in range(days):
        at = start + timedelta(days=day)
        for i in range(per_day):
            country = ("DE", "US", "CN")[i % 3]
            contact = make_contact(session, consent="express", country=country,
                                   stage=("prospect", "customer", "new_lead")[i % 3])
            send = Send(campaign_id=campaign.id, contact_id=contact.id, state="sent", sent_at=at)
            session.add(send)
            if i < day + 1:  # a rising unsubscribe rate
                session.add(Event(kind="unsubscribed", contact_id=contact.id, campaign_id=campaign.id,
                                  method="one_click", occurred_at=at))
                session.add(Event(kind="unsubscribe_reason", contact_id=contact.id, campaign_id=campaign.id,
                                  data={"reason": "too_many", "text": comment}, occurred_at=at))
            if i == 59 and day % 2 == 0:
                session.add(Event(kind="complained", contact_id=contact.id, campaign_id=campaign.id, occurred_at=at))
    session.flush()
    return campaign
