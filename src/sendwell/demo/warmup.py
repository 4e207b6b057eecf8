"""Demo step: a warm-up plan holds a new audience to each provider group's daily allowance, engaged people first."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.config import Settings
from sendwell.db.models import Consent, Contact, Event, Send, SendState
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends, new_claim_token
from sendwell.delivery.runner import run_campaign
from sendwell.delivery.warmup import plan_status, provider_groups, start_plan, waiting_count
from sendwell.demo.smtp_server import CaptureSMTPServer
from sendwell.flows import start_sending
from sendwell.runtime import Runtime
from sendwell.suppression.service import hash_email

TAG = "webshop-2026"
SCHEDULE = [10, 20, 40, 80]  # demo-sized; the built-in schedule starts at 50 (docs/delivery.md, "Warm-up")
SIGNUPS = {"gmail.com": 40, "outlook.com": 40, "qq.com": 40}
ENGAGED = 5
HTML = "<p>Dear {{ contact.first_name or 'buyer' }},</p><p>Welcome to our web shop: 10% off your first LED panel order.</p>"


def show_warmup(settings: Settings, data_dir: Path, say: Any = print) -> dict[str, Any]:
    """Start a plan for the From domain as of yesterday, send a welcome campaign on day 1 and day 2.

    The mail goes through a relay of its own (a second loopback SMTP server, folder
    `received-warmup`), as a new sending IP would; the plan stays running afterwards, so
    `sendwell warmup status` and the admin's warm-up page show day 2 on the demo folder.
    """
    today = datetime.now(timezone.utc).date()
    yesterday = today - timedelta(days=1)
    with CaptureSMTPServer(data_dir / "received-warmup") as relay:
        runtime = Runtime(settings.replace(smtp_url=relay.url))
        try:
            engaged = _signups(runtime, clicked_at=datetime.combine(yesterday, time(8), tzinfo=timezone.utc))
            with transaction(runtime.factory) as session:
                plan = start_plan(session, target=settings.sender_domain, schedule={"*": SCHEDULE}, start=yesterday)
                campaign = create_campaign(session, settings=runtime.settings, name="Web shop welcome offer",
                                           subject="10% off your first order", html=HTML, segment=f"tag = {TAG}")
                start_sending(session, settings=runtime.settings, campaign_id=campaign.id)
                campaign_id, plan_id = campaign.id, plan.id
            say(f"Warm-up: plan #{plan_id} for {settings.sender_domain} from {yesterday}, "
                f"{' → '.join(map(str, SCHEDULE))} mails a day per provider group; "
                f"{sum(SIGNUPS.values())} new web-shop signups at {', '.join(SIGNUPS)}")
            deliverer = runtime.make_deliverer()
            try:
                # Day 1 on a clock set to yesterday 10:00 UTC: the claims see yesterday's allowance.
                day1 = _claim_and_deliver(runtime, deliverer, campaign_id,
                                          datetime.combine(yesterday, time(10), tzinfo=timezone.utc))
                waited = _waiting(runtime, campaign_id)
                # Day 2 is today, on the real clock: what waited is due again.
                run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
            finally:
                deliverer.transport.close()
            with transaction(runtime.factory) as session:
                sent = {r[0]: r[1] for r in session.execute(
                    select(Send.id, Contact.email).join(Contact, Contact.id == Send.contact_id)
                    .where(Send.campaign_id == campaign_id, Send.state == SendState.SENT.value))}
                groups = provider_groups(session, {e.rpartition("@")[2] for e in sent.values()})
                waiting = waiting_count(session, campaign_id=campaign_id)
                [status] = [p for p in plan_status(session) if p["id"] == plan_id]
        finally:
            runtime.dispose()
    day2 = [i for i in sent if i not in set(day1)]
    per_group = {day: dict(Counter(groups[sent[i].rpartition("@")[2]] for i in ids))
                 for day, ids in (("day1", day1), ("day2", day2))}
    engaged_day1 = sum(1 for i in day1 if sent[i] in engaged)
    say(f"   day 1 (as of {yesterday}): sent {len(day1)} ({_groups(per_group['day1'])}), the {engaged_day1} "
        f"who clicked first; {waited} waited with reason warm_up")
    say(f"   day 2 (today): sent {len(day2)} ({_groups(per_group['day2'])}); {waiting} waiting for warm-up "
        f"until tomorrow — `sendwell warmup status` and the admin's Warm-up page show the plan")
    return {"plan": status, "sent": {"day1": len(day1), "day2": len(day2)}, "per_group": per_group,
            "engaged_first_day1": engaged_day1, "waited_after_day1": waited, "waiting": waiting,
            "relay_messages": len(relay.messages)}


def _signups(runtime: Runtime, *, clicked_at: datetime) -> set[str]:
    """New consenting contacts at the big mailbox providers; a few clicked a link on the web shop already."""
    pepper = runtime.settings.pepper
    engaged: set[str] = set()
    with transaction(runtime.factory) as session:
        for domain, count in SIGNUPS.items():
            for n in range(count):
                address = f"shop.buyer{n + 1}@{domain}"
                contact = Contact(email=address, email_hash=hash_email(pepper, address), first_name=f"Buyer {n + 1}",
                                  country="GB", region="uk", language="en", tags=[TAG], source="web shop")
                session.add(contact)
                session.flush()
                session.add(Consent(contact_id=contact.id, kind="express", source="web shop signup",
                                    wording="Send me offers by email", source_kind="web_form"))
                if n % (count // 2) == 1 and len(engaged) < ENGAGED:  # a person's click, not a scanner's
                    session.add(Event(kind="clicked", contact_id=contact.id, method="web", occurred_at=clicked_at,
                                      data={"source": "web shop"}))
                    engaged.add(address)
    return engaged


def _claim_and_deliver(runtime: Runtime, deliverer: Any, campaign_id: int, now: datetime) -> list[int]:
    """Claim and deliver as a worker does, with the claims' clock at `now`."""
    sent: list[int] = []
    while True:
        token = new_claim_token()
        with transaction(runtime.factory) as session:
            claimed = claim_sends(session, campaign_id=campaign_id, now=now, token=token,
                                  limit=runtime.settings.batch_size)
        if not claimed:
            return sent
        deliverer.deliver(campaign_id, claimed, token=token)
        sent += claimed


def _waiting(runtime: Runtime, campaign_id: int) -> int:
    with transaction(runtime.factory) as session:
        return waiting_count(session, campaign_id=campaign_id)


def _groups(counts: dict[str, int]) -> str:
    return ", ".join(f"{group} {n}" for group, n in sorted(counts.items()))
