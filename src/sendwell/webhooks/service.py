"""Outbound webhooks: emitting an event, the delivery log and redelivery.

The machinery is the transactional outbox (sendwell.outbox): the event row is written in the
caller's transaction, fanned out per endpoint and POSTed by the handlers in
sendwell.webhooks.delivery; event types and endpoints are in sendwell.webhooks.endpoints.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.db.models import Alert, OutboxMessage, WebhookDelivery
from sendwell.outbox.store import enqueue
from sendwell.webhooks.endpoints import EVENT_TYPES

DELIVERY_STATUSES = ("delivered", "retrying", "failed")


class WebhookError(ValueError):
    """A webhook request that cannot be carried out as asked."""


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
