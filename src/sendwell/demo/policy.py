"""Demo step: the frequency policy skips a capped contact and a paused contact, with their reasons."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Contact, Event, Send, SendState
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.progress import campaign_status, finish_if_done
from sendwell.runtime import Runtime

TAG = "policy-demo"
HTML = "<p>Dear {{ contact.first_name or 'buyer' }},</p><p>One more note about our LED panels this week.</p>"


def show_policy(runtime: Runtime, *, after_campaign_id: int, say: Any = print) -> dict[str, Any]:
    """Mail a prospect again the same day and a contact who paused; both are skipped with their reasons."""
    now = datetime.now(timezone.utc)
    with transaction(runtime.factory) as session:
        # Contacts the last campaign mailed, or skipped only for the cap (prospects mailed by the
        # campaign before it): none of them unsubscribed.
        mailed = (
            select(Contact)
            .join(Send, Send.contact_id == Contact.id)
            .where(Send.campaign_id == after_campaign_id,
                   (Send.state == SendState.SENT.value) | (Send.skip_reason == "frequency_cap"))
            .order_by(Contact.id)
        )
        prospect = session.scalars(mailed.where(Contact.stage == "prospect").limit(1)).one()
        customer = session.scalars(mailed.where(Contact.stage == "customer").limit(1)).one()
        # What the unsubscribe page's "pause 3 months" does for the person (the page itself is optout's).
        customer.paused_until = now + timedelta(days=90)
        session.add(Event(kind="preferences_changed", contact_id=customer.id, method="demo",
                          data={"changes": {"paused_until": customer.paused_until.isoformat()}}))
        for contact in (prospect, customer):
            contact.tags = [*contact.tags, TAG]
        campaign = create_campaign(
            session, settings=runtime.settings, name="Same-week extra note", subject="One more note",
            html=HTML, segment=f"tag = {TAG}", topic="led-lighting",
        )
        plan_campaign(session, campaign=campaign, settings=runtime.settings)
        queue_campaign(session, campaign=campaign)
        finish_if_done(session, campaign_id=campaign.id)
        reasons = dict(session.execute(
            select(Contact.email, Send.skip_reason).join(Send, Send.contact_id == Contact.id)
            .where(Send.campaign_id == campaign.id)
        ).all())
        status = campaign_status(session, campaign_id=campaign.id)
        shown = [
            {"email": prospect.email, "stage": "prospect", "why": "mailed earlier today; prospects get at most 1 per 7 days",
             "skip_reason": reasons.get(prospect.email)},
            {"email": customer.email, "stage": "customer",
             "why": f"paused until {customer.paused_until:%Y-%m-%d}", "skip_reason": reasons.get(customer.email)},
        ]
    for row in shown:
        say(f"   {row['email']} ({row['why']}) → skipped: {row['skip_reason']}")
    return {"campaign": status, "contacts": shown}


def format_policy(policy: dict[str, Any]) -> list[str]:
    """Summary lines for the demo's closing report."""
    lines = [f"Frequency policy (campaign {policy['campaign']['id']}):"]
    lines += [f"    {c['email']}: skipped as {c['skip_reason']} ({c['why']})" for c in policy["contacts"]]
    return lines
