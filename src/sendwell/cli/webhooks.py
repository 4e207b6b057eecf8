"""`sendwell webhooks …`: the configured endpoints, the delivery log, redelivery."""

from __future__ import annotations

from typing import Any

import click

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction
from sendwell.webhooks.service import EVENT_TYPES, WebhookError, get_delivery, list_deliveries, redeliver


@click.group("webhooks")
def webhooks() -> None:
    """Outbound webhooks: endpoints, delivery log, redelivery."""


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _as_dict(d: Any) -> dict[str, Any]:
    return {"id": d.id, "endpoint": d.endpoint, "event_type": d.event_type, "event_id": d.event_id,
            "attempt": d.attempt, "status": d.status, "http_status": d.http_status, "error": d.error,
            "duration_ms": d.duration_ms, "attempted_at": _iso(d.attempted_at), "next_retry_at": _iso(d.next_retry_at)}


@webhooks.command("endpoints")
@json_option
def webhooks_endpoints(as_json: bool) -> None:
    """The endpoints of SENDWELL_WEBHOOK_URLS and the event types each receives."""
    runtime = get_runtime()
    rows = [{"url": e.url, "events": sorted(e.events) if e.events is not None else ["*"]}
            for e in runtime.settings.webhook_endpoints]
    emit(rows, as_json, "\n".join(f"{r['url']}  [{', '.join(r['events'])}]" for r in rows)
         or "no webhook endpoints (set SENDWELL_WEBHOOK_URLS)")


@webhooks.command("deliveries")
@click.option("--event-type", default=None, help="Only this event type, e.g. contact.bounced.")
@click.option("--status", type=click.Choice(["delivered", "retrying", "failed"]), default=None,
              help="Only attempts with this outcome.")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only attempts with a greater id (paging).")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
def webhooks_deliveries(event_type: str | None, status: str | None, after: int, limit: int, as_json: bool) -> None:
    """The delivery log: every POST to an endpoint, oldest first."""
    if event_type is not None and event_type not in EVENT_TYPES:
        fail(f"--event-type: unknown event type {event_type!r} (one of {', '.join(EVENT_TYPES)})")
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        rows = [_as_dict(d) for d in list_deliveries(session, event_type=event_type, status=status,
                                                     after=after, limit=limit)]
    human = "\n".join(
        f"{r['id']:>6}  {r['attempted_at']}  {r['event_type']:<28} #{r['event_id']} try {r['attempt']}  "
        f"{r['status']:<9} {r['http_status'] or '-'}  {r['duration_ms']} ms  {r['endpoint']}"
        + (f"  ({r['error']})" if r["error"] and r["status"] != "delivered" else "")
        + (f"  next {r['next_retry_at']}" if r["next_retry_at"] else "")
        for r in rows
    ) or "no webhook deliveries"
    emit(rows, as_json, human)


@webhooks.command("redeliver")
@click.argument("delivery_id", type=int)
@json_option
def webhooks_redeliver(delivery_id: int, as_json: bool) -> None:
    """POST the event of a logged attempt to its endpoint again (made by the dispatcher in `sendwell serve`)."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            row = redeliver(session, delivery_id=delivery_id)
            delivery = get_delivery(session, delivery_id=delivery_id)
            data = {"delivery_id": delivery_id, "event_id": delivery.event_id if delivery else None,
                    "endpoint": delivery.endpoint if delivery else None, "scheduled_at": _iso(row.next_attempt_at)}
    except (LookupError, WebhookError) as exc:
        fail(str(exc))
    emit(data, as_json, f"event {data['event_id']} scheduled for {data['endpoint']} again")
