"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.followups import outbox_worker as OutboxWorker  # noqa: F401
from sendwell.outbox.store import LEASE, MAX_ATTEMPTS, backoff, claim, enqueue, finish  # noqa: F401
from sendwell.webhooks.delivery import (  # noqa: F401
    SIGNATURE_HEADER,
    WebhookResult,
    deliver_webhook,
    sign_body,
    webhook_body,
)
