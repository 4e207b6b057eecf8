"""Which handlers drain the outbox in Sendwell: the opt-out mails, the webhooks and the signup confirmations (composition only)."""

from __future__ import annotations

from datetime import datetime

from sendwell.mail.transport import Transport
from sendwell.optout.followup_mails import register_mail_handlers
from sendwell.outbox.worker import Dispatcher, OutboxWorker
from sendwell.runtime import Runtime
from sendwell.signup.mail import register_signup_mail_handler
from sendwell.webhooks.delivery import register_webhook_handlers


def outbox_dispatcher(runtime: Runtime, *, transport: Transport | None = None) -> Dispatcher:
    """A dispatcher over the runtime's database with every follow-up handler registered."""
    dispatcher = Dispatcher(runtime.factory)
    register_mail_handlers(dispatcher, runtime, transport=transport)
    register_webhook_handlers(dispatcher, runtime)
    register_signup_mail_handler(dispatcher, runtime, transport=transport)
    return dispatcher


def dispatch_outbox(runtime: Runtime, *, now: datetime | None = None, transport: Transport | None = None) -> dict[str, int]:
    """Process every due outbox row once; returns counts by outcome (and `claimed`)."""
    return outbox_dispatcher(runtime, transport=transport).dispatch(now=now)


def outbox_worker(runtime: Runtime, poll_seconds: float = 15.0, debounce_seconds: float = 0.5) -> OutboxWorker:
    """The dispatcher thread of `sendwell serve` / `sendwell worker`, with every follow-up handler."""
    return OutboxWorker(outbox_dispatcher(runtime), poll_seconds=poll_seconds, debounce_seconds=debounce_seconds)
