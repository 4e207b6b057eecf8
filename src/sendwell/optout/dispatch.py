"""Drain the outbox: send thank-you, magic-link and double opt-in mails, fan out and post webhooks.

Webhook events (opt-outs, bounces, complaints, alerts: sendwell.webhooks.service) are fanned
out to the endpoints that subscribe to their type, one row each; every POST is recorded in
the delivery log (`webhook_deliveries`) in the same transaction as the row's new state.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update

from sendwell.db.models import (
    SCOPE_ALL,
    Contact,
    Event,
    OutboxMessage,
    Suppression,
    SuppressionReason,
    WebhookDelivery,
)
from sendwell.db.session import transaction
from sendwell.i18n import choose_language
from sendwell.optout import mail
from sendwell.optout.outbox import claim, deliver_webhook, enqueue, finish, webhook_body
from sendwell.optout.tokens import (
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    TokenData,
    make_confirm_token,
    make_token,
)


def mask_email(email: str) -> str:
    """`ma***@example.com`: enough for the person to recognise, little for a bystander."""
    local, _, domain = email.partition("@")
    shown = local[:2] if len(local) > 3 else local[:1]
    return f"{shown}***@{domain}"


def dispatch_outbox(runtime: Any, *, now: datetime | None = None, transport: Any = None) -> dict[str, int]:
    """Process every due outbox row once; returns counts by outcome (and `claimed`)."""
    now = now or datetime.now(timezone.utc)
    ids = claim(runtime.factory, now=now)
    counts = {"claimed": len(ids), "done": 0, "skipped": 0, "retry": 0, "failed": 0}
    if not ids:
        return counts
    if not runtime.settings.webhook_url_list:
        # No endpoints: settle every claimed webhook event in one statement, not one
        # transaction each (a burst of one-click POSTs makes many of them).
        with transaction(runtime.factory) as session:
            events = list(session.scalars(select(OutboxMessage.id).where(
                OutboxMessage.id.in_(ids), OutboxMessage.kind == "event")))
            if events:
                session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(events)).values(
                    status="skipped", lease_until=None, attempts=OutboxMessage.attempts + 1,
                    last_error="no webhook endpoints configured"))
        counts["skipped"] += len(events)
        ids = [i for i in ids if i not in set(events)]
    own_transport = transport is None
    if own_transport:
        from sendwell.delivery.transport import make_transport

        s = runtime.settings
        transport = make_transport(s.smtp_url, s.capture_dir, timeout=s.smtp_timeout)
    try:
        for job in _load(runtime, ids, now):
            if job["kind"] == "webhook":
                counts[_post_webhook(runtime, job, now)] += 1
                time.sleep(0)
                continue
            status, error = _process(runtime, job, transport, now)
            if status != "done_recorded":
                finish(runtime.factory, job["id"], status=status, error=error)
            counts["done" if status == "done_recorded" else status] += 1
            # Hand the GIL back between mails: in `sendwell serve` this thread shares the
            # process with the web requests, whose latency matters more than this mail's.
            time.sleep(0)
    finally:
        if own_transport:
            transport.close()
    return counts


def _load(runtime: Any, ids: list[int], now: datetime) -> list[dict[str, Any]]:
    """Everything the claimed rows need, read in a few queries per batch (not per row)."""
    settings = runtime.settings
    jobs: list[dict[str, Any]] = []
    with transaction(runtime.factory) as session:
        rows = list(session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids),
                                                                OutboxMessage.status == "pending")))
        contact_ids = {r.contact_id for r in rows if r.contact_id}
        contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
        reasons: dict[str, set[str]] = {}
        for email_hash, reason in session.execute(select(Suppression.email_hash, Suppression.reason).where(
                Suppression.email_hash.in_({c.email_hash for c in contacts.values()}), Suppression.scope == SCOPE_ALL)):
            reasons.setdefault(email_hash, set()).add(reason)
        complained = set(session.scalars(select(Event.contact_id).where(
            Event.contact_id.in_(contact_ids), Event.kind == "complained")))
        endpoints = settings.webhook_endpoints
        for row in rows:
            if row.kind == "event":
                # Fan out to the endpoints subscribed to this event type in this transaction;
                # one row each. The event row's id is the event id every endpoint and retry sees.
                event_type = row.payload.get("event", "")
                wanted = [e.url for e in endpoints if e.wants(event_type)]
                for url in wanted:
                    enqueue(session, kind="webhook", contact_id=row.contact_id,
                            payload={"url": url, "body": {"id": row.id, **row.payload}}, now=now)
                row.status = "done" if wanted else "skipped"
                row.last_error = None if wanted else f"no endpoint subscribes to {event_type}"
                row.lease_until, row.attempts, row.sent_at = None, row.attempts + 1, now
                continue
            contact = contacts.get(row.contact_id) if row.contact_id else None
            contact_reasons = reasons.get(contact.email_hash, set()) if contact else set()
            jobs.append({
                "id": row.id, "kind": row.kind, "payload": dict(row.payload), "contact": contact,
                "reasons": contact_reasons,
                "complained": SuppressionReason.COMPLAINT.value in contact_reasons or row.contact_id in complained,
            })
        session.flush()  # the fan-out and the event rows' status, before the objects are detached
        session.expunge_all()
    return jobs


def _post_webhook(runtime: Any, job: dict[str, Any], now: datetime) -> str:
    """POST one webhook row to its endpoint and log the attempt; returns done / retry."""
    url, body = job["payload"]["url"], job["payload"]["body"]
    event_type, event_id = str(body.get("event", "")), int(body.get("id") or job["id"])
    # The attempt's own time, not the batch's: a batch of slow endpoints can take minutes,
    # and the backoff counts from this attempt. (`now` wins when a caller moves the clock ahead.)
    at = max(now, datetime.now(timezone.utc))
    result = deliver_webhook(url, runtime.settings.webhook_signing_key, webhook_body(body),
                             headers={"X-Sendwell-Event": event_type, "X-Sendwell-Event-Id": str(event_id)})

    def record(session: Any, row: OutboxMessage) -> None:
        status = "delivered" if result.ok else "failed" if row.status == "failed" else "retrying"
        session.add(WebhookDelivery(
            outbox_id=row.id, endpoint=url, event_type=event_type, event_id=event_id, attempt=row.attempts,
            status=status, http_status=result.http_status, error=result.error,
            duration_ms=round(result.seconds * 1000), attempted_at=at,
            next_retry_at=row.next_attempt_at if status == "retrying" else None,
        ))

    status = "done" if result.ok else "retry"
    finish(runtime.factory, job["id"], status=status, error=result.error, now=at, record=record)
    return status


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
        if not settings.sends_thank_you_to(contact.region):
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
    from sendwell.delivery.transport import TransportUnavailable

    try:
        outcome = transport.send(settings.from_address, contact.email, data)
    except TransportUnavailable as exc:
        return "retry", str(exc)
    if outcome.status == "temporary":
        return "retry", f"{outcome.code} {outcome.message}"
    if outcome.status == "permanent":
        return "failed", f"{outcome.code} {outcome.message}"
    # Recorded right after the hand-off, one mail at a time: a crash can repeat at most the
    # mail in flight, never a batch.
    with transaction(runtime.factory) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == job["id"]).values(
            status="done", sent_at=now, lease_until=None, attempts=OutboxMessage.attempts + 1, last_error=None))
        session.add(Event(kind=f"{kind}_sent", contact_id=contact.id, method="", data={"message_id": message_id},
                          occurred_at=datetime.now(timezone.utc)))
    return "done_recorded", None
