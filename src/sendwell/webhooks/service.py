"""Outbound webhooks: event types, which endpoint gets which, emitting an event, the delivery log.

The machinery (outbox row in the caller's transaction, fan-out per endpoint, HMAC signature,
retries with backoff) is the opt-out outbox in sendwell.optout.outbox / dispatch; this module
is the vocabulary and the use cases around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.db.models import Alert, OutboxMessage, WebhookDelivery
from sendwell.optout.outbox import enqueue

# Every event a webhook endpoint can receive; the names are a contract (docs/api.md).
EVENT_TYPES: dict[str, str] = {
    "contact.unsubscribed": "a contact opted out of all marketing (any method)",
    "contact.preferences_changed": "a contact chose fewer mails, a pause or other topics",
    "contact.resubscribed": "a contact undid an opt-out or confirmed a double opt-in",
    "contact.bounced": "a hard or soft bounce was recorded for a contact",
    "contact.complained": "a contact marked a mail as spam (an ARF or provider complaint)",
    "alert.raised": "a new alert: a spike of unsubscribes, complaints or bounces, or receivers rejecting our mail",
}
DELIVERY_STATUSES = ("delivered", "retrying", "failed")


class WebhookError(ValueError):
    """A webhook request that cannot be carried out as asked."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    events: frozenset[str] | None  # None = every event type

    def wants(self, event_type: str) -> bool:
        """True if this endpoint subscribes to the event type."""
        if self.events is None:
            return True
        return event_type in self.events or f"{event_type.partition('.')[0]}.*" in self.events


def parse_endpoints(value: str) -> list[Endpoint]:
    """`SENDWELL_WEBHOOK_URLS`: comma-separated `URL [event-type ...]`; no event types = all of them.

    `https://crm.example/hook, https://ops.example/hook alert.raised contact.complained`
    (a `contact.*` wildcard is accepted). Raises ValueError naming the bad entry.
    """
    endpoints = []
    for entry in value.split(","):
        parts = entry.split()
        if not parts:
            continue
        url, wanted = parts[0], parts[1:]
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"SENDWELL_WEBHOOK_URLS: {url!r} is not an http(s) URL")
        for name in wanted:
            if name not in EVENT_TYPES and not (name.endswith(".*") and any(
                    e.startswith(name[:-1]) for e in EVENT_TYPES)):
                raise ValueError(f"SENDWELL_WEBHOOK_URLS: unknown event type {name!r} for {url} "
                                 f"(one of {', '.join(EVENT_TYPES)})")
        endpoints.append(Endpoint(url, frozenset(wanted) if wanted else None))
    return endpoints


def emit_event(
    session: Session, *, event_type: str, data: dict[str, Any], contact_id: int | None = None,
    email: str | None = None, now: datetime | None = None,
) -> None:
    """Queue a webhook event in the caller's transaction: sent only if that transaction commits."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    now = now or datetime.now(timezone.utc)
    payload: dict[str, Any] = {"event": event_type, "occurred_at": now.isoformat(), "data": data}
    if contact_id is not None:
        payload.update(contact_id=contact_id, email=email)
    # One outbox row per event; the dispatcher fans it out to the subscribed endpoints.
    enqueue(session, kind="event", contact_id=contact_id, payload=payload, now=now)


def emit_alert(session: Session, *, alert: Alert, now: datetime | None = None) -> None:
    """Queue `alert.raised` for a new (flushed) alert, in the caller's transaction."""
    emit_event(session, event_type="alert.raised", now=now or alert.created_at, data={
        "alert_id": alert.id, "kind": alert.kind, "severity": alert.severity, "campaign_id": alert.campaign_id,
        "message": alert.message, "details": dict(alert.data or {}),
    })


def list_deliveries(
    session: Session, *, event_type: str | None = None, status: str | None = None,
    endpoint: str | None = None, after: int = 0, limit: int = 50,
) -> list[WebhookDelivery]:
    """Delivery attempts in id order (oldest first), optionally filtered."""
    query = select(WebhookDelivery).where(WebhookDelivery.id > after)
    if event_type:
        query = query.where(WebhookDelivery.event_type == event_type)
    if status:
        query = query.where(WebhookDelivery.status == status)
    if endpoint:
        query = query.where(WebhookDelivery.endpoint == endpoint)
    return list(session.scalars(query.order_by(WebhookDelivery.id).limit(limit)))


def get_delivery(session: Session, *, delivery_id: int) -> WebhookDelivery | None:
    """One delivery attempt by id, or None."""
    return session.get(WebhookDelivery, delivery_id)


def redeliver(session: Session, *, delivery_id: int, now: datetime | None = None) -> OutboxMessage:
    """Schedule the event of a delivery attempt for another POST to the same endpoint, now.

    Allowed once the event has settled (delivered or given up); a redelivery that fails is
    retried with the usual backoff while attempts remain. Raises WebhookError otherwise.
    """
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise LookupError(f"no webhook delivery with id {delivery_id}")
    row = session.get(OutboxMessage, delivery.outbox_id) if delivery.outbox_id else None
    if row is None:
        raise WebhookError(f"the event of delivery {delivery_id} is gone (its contact was erased)")
    if row.status == "pending":
        raise WebhookError(f"the event of delivery {delivery_id} is already scheduled "
                           f"(next attempt at {row.next_attempt_at.isoformat(timespec='seconds')})")
    now = now or datetime.now(timezone.utc)
    row.status, row.next_attempt_at, row.lease_until = "pending", now, None
    session.flush()
    return row
