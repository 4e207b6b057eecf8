"""Webhook delivery from the outbox: fan an event out to its endpoints, sign and POST each copy, log it.

Webhook events (opt-outs, bounces, complaints, alerts: sendwell.webhooks.service) are fanned
out to the endpoints that subscribe to their type, one row each; every POST is recorded in
the delivery log (`webhook_deliveries`) in the same transaction as the row's new state.

Every POST is signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), so receivers verify
it with any Standard Webhooks library and refuse a replay whose timestamp is old. The key is
the webhook secret (SENDWELL_WEBHOOK_SECRET, `whsec_` + base64), never the master secret key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from sendwell.config import read_config_file, write_config_values
from sendwell.db.models import OutboxMessage, WebhookDelivery
from sendwell.db.session import transaction
from sendwell.outbox.store import Message, enqueue, finish, settle
from sendwell.outbox.worker import Dispatcher

# The older signature (body only, no timestamp, so replayable); still sent beside the Standard
# Webhooks headers for receivers that check it, and to be dropped (docs/api.md).
SIGNATURE_HEADER = "X-Sendwell-Signature"
SECRET_PREFIX = "whsec_"
_SECRET_LOCK = threading.Lock()


def sign_body(secret: str, body: bytes) -> str:
    """The older signature header value: `sha256=<hex HMAC-SHA256 of the raw body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_webhook_secret() -> str:
    """A fresh webhook secret: `whsec_` + base64 of 32 random bytes (the Standard Webhooks form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signer(secret: str) -> Webhook:
    """The Standard Webhooks signer of a secret: `whsec_…` is base64; any other string keys as its bytes."""
    return Webhook(secret if secret.startswith(SECRET_PREFIX) else secret.encode())


def signature_headers(secret: str, body: bytes, *, message_id: str, at: datetime) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` for one POST of `body`."""
    at = at.astimezone(timezone.utc)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signer(secret).sign(message_id, at, body.decode())}


def webhook_secret(runtime: Any) -> str:
    """The webhook secret, made and stored in the config file on first need (never the secret key).

    `sendwell init` makes it when webhook URLs are configured; this covers URLs set later. The
    file is read again under a lock first, so processes sharing a data folder share the secret.
    """
    if runtime.settings.webhook_secret:
        return str(runtime.settings.webhook_secret)
    with _SECRET_LOCK:
        path = runtime.settings.config_file
        secret = read_config_file(path).get("webhook_secret", "")
        if not secret:
            secret = new_webhook_secret()
            write_config_values(path, {"webhook_secret": secret})
            path.chmod(0o600)
        runtime.replace_settings(runtime.settings.replace(webhook_secret=secret))
    return secret


@dataclass(frozen=True)
class WebhookResult:
    """What one POST to an endpoint came to."""

    http_status: int | None  # None when no answer came (connection refused, timeout, …)
    error: str | None  # None on 2xx
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


def deliver_webhook(url: str, secret: str, body: bytes, timeout: float = 10.0,
                    headers: dict[str, str] | None = None, *, message_id: str | None = None,
                    at: datetime | None = None) -> WebhookResult:
    """POST one signed body and report the answer; never raises for network trouble.

    `message_id` is the `webhook-id` (the same on every retry of an event, so receivers can
    drop duplicates); `at` the signed timestamp (now unless given).
    """
    signed = signature_headers(secret, body, message_id=message_id or f"msg_{uuid.uuid4().hex}",
                               at=at or datetime.now(timezone.utc))
    sent = {"Content-Type": "application/json", **signed, SIGNATURE_HEADER: sign_body(secret, body),
            "User-Agent": "Sendwell-Webhook/1", **(headers or {})}
    start = time.perf_counter()
    try:
        # No redirects: a 3xx is an endpoint misconfiguration to see in the log, and following
        # one would re-send the signed body to a host nobody configured.
        response = httpx.post(url, content=body, headers=sent, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return WebhookResult(None, f"{type(exc).__name__}: {exc}"[:1000], time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if 200 <= response.status_code < 300:
        return WebhookResult(response.status_code, None, seconds)
    return WebhookResult(response.status_code, f"HTTP {response.status_code}", seconds)


def webhook_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def fan_out(runtime: Any, messages: list[Message], now: datetime) -> dict[str, int]:
    """Turn each `event` row into one `webhook` row per endpoint subscribed to its type."""
    endpoints = runtime.settings.webhook_endpoints
    with transaction(runtime.factory) as session:
        if not endpoints:
            # No endpoints: settle every event in one statement, not one transaction each
            # (a burst of one-click POSTs makes many of them).
            settle(session, [m.id for m in messages], status="skipped", error="no webhook endpoints configured")
            return {"skipped": len(messages)}
        for message in messages:
            # The event row's id is the event id every endpoint and retry sees.
            event_type = message.payload.get("event", "")
            wanted = [e.url for e in endpoints if e.wants(event_type)]
            for url in wanted:
                enqueue(session, kind="webhook", contact_id=message.contact_id,
                        payload={"url": url, "body": {"id": message.id, **message.payload}}, now=now)
            settle(session, [message.id], status="done" if wanted else "skipped", sent_at=now,
                   error=None if wanted else f"no endpoint subscribes to {event_type}")
    # The copies go out on the next pass; the event rows themselves are not counted as sent.
    return {}


def post_webhooks(runtime: Any, messages: list[Message], now: datetime) -> dict[str, int]:
    """POST each `webhook` row to its endpoint and log the attempt; counts done / retry."""
    counts: dict[str, int] = {}
    for message in messages:
        status = _post(runtime, message, now)
        counts[status] = counts.get(status, 0) + 1
        # Hand the GIL back between POSTs: in `sendwell serve` this thread shares the process
        # with the web requests, whose latency matters more.
        time.sleep(0)
    return counts


def _post(runtime: Any, message: Message, now: datetime) -> str:
    url, body = message.payload["url"], message.payload["body"]
    event_type, event_id = str(body.get("event", "")), int(body.get("id") or message.id)
    # The attempt's own time, not the batch's: a batch of slow endpoints can take minutes,
    # and the backoff counts from this attempt. (`now` wins when a caller moves the clock ahead.)
    at = max(now, datetime.now(timezone.utc))
    result = deliver_webhook(url, webhook_secret(runtime), webhook_body(body), message_id=f"evt_{event_id}",
                             headers={"X-Sendwell-Event": event_type, "X-Sendwell-Event-Id": str(event_id)})

    def record(session: Session, row: OutboxMessage) -> None:
        status = "delivered" if result.ok else "failed" if row.status == "failed" else "retrying"
        session.add(WebhookDelivery(
            outbox_id=row.id, endpoint=url, event_type=event_type, event_id=event_id, attempt=row.attempts,
            status=status, http_status=result.http_status, error=result.error,
            duration_ms=round(result.seconds * 1000), attempted_at=at,
            next_retry_at=row.next_attempt_at if status == "retrying" else None,
        ))

    status = "done" if result.ok else "retry"
    finish(runtime.factory, message.id, status=status, error=result.error, now=at, record=record)
    return status


def register_webhook_handlers(dispatcher: Dispatcher, runtime: Any) -> None:
    """Let the dispatcher fan out `event` rows and deliver `webhook` rows with this runtime's settings."""
    dispatcher.register("event", lambda messages, now: fan_out(runtime, messages, now))
    dispatcher.register("webhook", lambda messages, now: post_webhooks(runtime, messages, now))
