"""The opt-out flow's follow-up mails, sent from the outbox: thank-you, magic link, double opt-in."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from sendwell.config import Settings
from sendwell.db.models import SCOPE_ALL, Contact, Event, Suppression, SuppressionReason
from sendwell.db.session import transaction
from sendwell.i18n import choose_language
from sendwell.mail.transport import TransportUnavailable, make_transport
from sendwell.optout import mail
from sendwell.optout.tokens import (
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    TokenData,
    make_confirm_token,
    make_token,
)
from sendwell.outbox.store import Message, finish, settle
from sendwell.outbox.worker import Dispatcher

MAIL_KINDS = ("thank_you", "magic_link", "confirm")


def mask_email(email: str) -> str:
    """`ma***@example.com`: enough for the person to recognise, little for a bystander."""
    local, _, domain = email.partition("@")
    shown = local[:2] if len(local) > 3 else local[:1]
    return f"{shown}***@{domain}"


def sends_thank_you_to(settings: Settings, region: str) -> bool:
    """Whether contacts of this region get the thank-you mail (SENDWELL_THANK_YOU_REGIONS)."""
    regions = settings.thank_you_region_set
    return regions is None or region in regions


def send_mails(runtime: Any, messages: list[Message], now: datetime, *, transport: Any = None) -> dict[str, int]:
    """Send each mail row over one SMTP session (the given transport, or one opened for this batch)."""
    counts: dict[str, int] = {}
    own_transport = transport is None
    if own_transport:
        s = runtime.settings
        transport = make_transport(s.smtp_url, s.capture_dir, timeout=s.smtp_timeout)
    try:
        for job in _load(runtime, messages):
            status, error = _process(runtime, job, transport, now)
            if status != "done_recorded":
                finish(runtime.factory, job["id"], status=status, error=error)
            outcome = "done" if status == "done_recorded" else status
            counts[outcome] = counts.get(outcome, 0) + 1
            # Hand the GIL back between mails: in `sendwell serve` this thread shares the
            # process with the web requests, whose latency matters more than this mail's.
            time.sleep(0)
    finally:
        if own_transport:
            transport.close()
    return counts


def hand_off(transport: Any, settings: Settings, address: str, data: bytes) -> tuple[str, str] | None:
    """Send one outbox mail: None once the server took it, else the (status, error) to `finish` the
    row with — "retry" when the server is unreachable or refuses for now, "failed" when it refuses for good."""
    try:
        outcome = transport.send(settings.from_address, address, data)
    except TransportUnavailable as exc:
        return "retry", str(exc)
    if outcome.status == "temporary":
        return "retry", f"{outcome.code} {outcome.message}"
    if outcome.status == "permanent":
        return "failed", f"{outcome.code} {outcome.message}"
    return None


def _load(runtime: Any, messages: list[Message]) -> list[dict[str, Any]]:
    """Each mail's contact and opt-out state, read in a few queries per batch (not per row)."""
    contact_ids = {m.contact_id for m in messages if m.contact_id}
    with transaction(runtime.factory) as session:
        contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
        reasons: dict[str, set[str]] = {}
        for email_hash, reason in session.execute(select(Suppression.email_hash, Suppression.reason).where(
                Suppression.email_hash.in_({c.email_hash for c in contacts.values()}), Suppression.scope == SCOPE_ALL)):
            reasons.setdefault(email_hash, set()).add(reason)
        complained = set(session.scalars(select(Event.contact_id).where(
            Event.contact_id.in_(contact_ids), Event.kind == "complained")))
        session.expunge_all()
    jobs = []
    for message in messages:
        contact = contacts.get(message.contact_id) if message.contact_id else None
        contact_reasons = reasons.get(contact.email_hash, set()) if contact else set()
        jobs.append({
            "id": message.id, "kind": message.kind, "payload": message.payload, "contact": contact,
            "reasons": contact_reasons,
            "complained": SuppressionReason.COMPLAINT.value in contact_reasons or message.contact_id in complained,
        })
    return jobs


def _process(runtime: Any, job: dict[str, Any], transport: Any, now: datetime) -> tuple[str, str | None]:
    settings = runtime.settings
    kind, payload, contact = job["kind"], job["payload"], job["contact"]
    if contact is None:
        return "skipped", "contact no longer exists"
    reasons = job["reasons"]
    language = choose_language(contact.language)
    keys = settings.secret_keys
    if kind == "thank_you":
        if job["complained"]:
            return "skipped", "never after a complaint"
        if SuppressionReason.UNSUBSCRIBE.value not in reasons:
            return "skipped", "no longer unsubscribed"
        if not sends_thank_you_to(settings, contact.region):
            return "skipped", f"thank-you mail is off for region {contact.region}"
        token = make_token(keys, SALT_UNSUBSCRIBE, TokenData(contact.id, payload.get("campaign_id"), None))
        subject, text, html = mail.thank_you(settings, language=language, masked=mask_email(contact.email),
                                             undo_url=f"{settings.base_url}/u/{token}")
    elif kind == "magic_link":
        token = make_token(keys, SALT_PREFERENCES, TokenData(contact.id, None, None))
        subject, text, html = mail.magic_link(settings, language=language, url=f"{settings.base_url}/p/{token}")
    elif kind == "confirm":
        token = make_confirm_token(keys, contact.id)
        subject, text, html = mail.confirmation(settings, language=language, url=f"{settings.base_url}/c/{token}")
    else:
        return "failed", f"unknown outbox kind {kind!r}"
    data, message_id = mail.build(settings, to_address=contact.email,
                                  to_name=" ".join(x for x in (contact.first_name, contact.last_name) if x),
                                  subject=subject, text=text, html=html, signer=runtime.signer)
    refused = hand_off(transport, settings, contact.email, data)
    if refused:
        return refused
    # Recorded right after the hand-off, one mail at a time: a crash can repeat at most the
    # mail in flight, never a batch.
    with transaction(runtime.factory) as session:
        settle(session, [job["id"]], status="done", sent_at=now)
        session.add(Event(kind=f"{kind}_sent", contact_id=contact.id, method="", data={"message_id": message_id},
                          occurred_at=datetime.now(timezone.utc)))
    return "done_recorded", None


def register_mail_handlers(dispatcher: Dispatcher, runtime: Any, *, transport: Any = None) -> None:
    """Let the dispatcher send the opt-out mails with this runtime (and transport, if one is given)."""
    def handler(messages: list[Message], now: datetime) -> dict[str, int]:
        return send_mails(runtime, messages, now, transport=transport)

    for kind in MAIL_KINDS:
        dispatcher.register(kind, handler)
