"""Demo step for list hygiene: last year's quiet leads get one reconfirmation mail; one keeps, the rest sunset."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import select

from sendwell.contacts.records import ensure_topic
from sendwell.db.models import Consent, Contact, Subscription, Suppression
from sendwell.db.session import transaction
from sendwell.delivery.runner import run_campaign
from sendwell.flows import run_hygiene
from sendwell.hygiene.report import summary_rows
from sendwell.insight.engagement import record_engagement
from sendwell.optout.service import unsubscribe_contact
from sendwell.runtime import Runtime
from sendwell.suppression.service import hash_email

# Leads from last year's fair, as if imported seven months ago (the demo's own data is new).
LEADS = (
    ("quiet", "m.rossi@illuminazione-rossi.example", "IT", "Marco", None),
    ("quiet", "info@lichthaus-berlin.example", "DE", "", None),  # a role address: flagged too
    ("quiet", "j.smith@gmial.com", "US", "John", None),  # a likely typo: flagged, never changed
    ("keeps", "a.dubois@lumiere-lyon.example", "FR", "Amélie", None),
    ("clicked", "k.tanaka@akari-trading.example", "JP", "Kenji", 40),  # clicked 40 days ago
    ("left", "p.novak@svetlo.example", "CZ", "Petr", None),  # unsubscribed back then: never asked
)


def show_hygiene(runtime: Runtime, server_url: str, received: list[Any], say: Any) -> dict[str, Any]:
    """Seed the old leads, run a pass now and one 31 days on, with a real keep-me click between."""
    settings = runtime.settings
    now = datetime.now(timezone.utc)
    then = now - timedelta(days=210)
    ids: dict[str, list[int]] = {}
    with transaction(runtime.factory) as session:
        topic = ensure_topic(session, slug="led-lighting")
        for role, address, country, first, clicked in LEADS:
            contact = Contact(email=address, email_hash=hash_email(settings.pepper, address), first_name=first,
                              country=country, region="eu" if country in ("IT", "DE", "FR", "CZ") else "other",
                              stage="prospect", source="Light + Building 2026 visitor list", created_at=then)
            session.add(contact)
            session.flush()
            session.add(Consent(contact_id=contact.id, kind="express", source="trade fair badge scan",
                                obtained_at=then, wording="Yes, send me product news by e-mail."))
            session.add(Subscription(contact_id=contact.id, topic_id=topic.id))
            session.flush()
            ids.setdefault(role, []).append(contact.id)
            if clicked:
                record_engagement(session, contact_id=contact.id, kind="clicked", occurred_at=now - timedelta(days=clicked))
            if role == "left":
                unsubscribe_contact(session, contact_id=contact.id, method="page", now=then + timedelta(days=30))
    before = len(received)
    with transaction(runtime.factory) as session:
        first = run_hygiene(session, settings=settings, now=now, trigger="demo")
    for campaign_id, _ in first.batches:
        deliverer = runtime.make_deliverer()
        try:
            run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
        finally:
            deliverer.transport.close()
    asked = [m for m in received[before:] if b"Do you still want to hear from us?" in m.data]
    say(f"15. Hygiene pass (now): {first.report['jobs']['sunset']['entered']} leads silent for over "
        f"{settings.sunset_days} days got one reconfirmation mail; the one who clicked 40 days ago and the "
        "one who unsubscribed were not asked")
    _print(first.report, say)

    # One of them answers: GET shows a button and changes nothing; the POST keeps them.
    keeper = next(a for role, a, *_ in LEADS if role == "keeps")
    mail = next(m for m in asked if m.rcpt_tos[0] == keeper)
    url = _keep_link(mail.data)
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        page = client.get(url)
        answer = client.post(url)
    say(f"    {keeper} opened the “keep me subscribed” link (GET {page.status_code}: a button, nothing changed) "
        f"and clicked it (POST {answer.status_code})")

    later = now + timedelta(days=settings.reconfirm_days + 1)
    with transaction(runtime.factory) as session:
        second = run_hygiene(session, settings=settings, now=later, trigger="demo")
        sunset = sorted(session.scalars(select(Contact.email).join(
            Suppression, Suppression.contact_id == Contact.id).where(Suppression.reason == "sunset")))
    say(f"    Hygiene pass as of {later.date().isoformat()} ({settings.reconfirm_days + 1} days on, `--as-of`): "
        f"no answer → suppressed with reason sunset: {', '.join(sunset)}")
    _print(second.report, say)
    return {"asked": len(asked), "sent": len(received) - before, "keep_get_status": page.status_code,
            "keep_post_status": answer.status_code, "sunset": sunset, "kept": [keeper],
            "flagged": first.report["jobs"]["addresses"]["flagged"],
            "reports": [first.report, second.report]}


def _print(report: dict[str, Any], say: Any) -> None:
    for job, result in summary_rows(report):
        say(f"      {job:<52} {result}")


def _keep_link(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",))
    match = re.search(r"https?://\S+/k/[A-Za-z0-9_.\-]+", body.get_content() if body else "")
    if match is None:
        raise RuntimeError("the reconfirmation mail has no keep-me link")
    return match.group(0)


def format_hygiene(hygiene: dict[str, Any]) -> list[str]:
    """Lines for the demo's closing summary."""
    flagged = ", ".join(f"{k} {v}" for k, v in hygiene["flagged"].items() if v) or "none"
    return [f"Hygiene: {hygiene['asked']} reconfirmation mails; kept {len(hygiene['kept'])}; "
            f"sunset {len(hygiene['sunset'])}; address flags: {flagged}"]
