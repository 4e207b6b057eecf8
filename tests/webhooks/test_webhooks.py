"""Outbound webhooks for bounce, complaint and alert: same transaction, per-endpoint subscriptions,
HMAC signature, retry after a 500, and the delivery log, against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from sendwell.db.models import Contact, OutboxMessage, WebhookDelivery
from sendwell.db.session import transaction
from sendwell.feedback.classify import Classification
from sendwell.feedback.classify.result import replace
from sendwell.feedback.service import record_feedback
from sendwell.followups import dispatch_outbox
from sendwell.outbox import store
from sendwell.webhooks.delivery import deliver_webhook
from sendwell.webhooks.endpoints import parse_endpoints
from tests.feedback.factories import make_sent
from tests.helpers import WebhookReceiver, make_contact

SECRET = "crm-shared-secret"  # a plain string keys as its bytes (a `whsec_` one is base64)
HARD = Classification(kind="hard", recipients=("anna@licht.example",), status="5.1.1", reason="user unknown")
COMPLAINT = Classification(kind="complaint", recipients=("bob@bulbs.example",), feedback_type="abuse")
POLICY = Classification(kind="hard", recipients=("carl@lamps.example",), status="5.7.1",
                        reason="message rejected by policy", is_sender_fault=True)


def _tied(s, classification):
    """The report as a real one arrives: quoting the Message-ID of the mail we sent its recipient."""
    contact = s.scalars(select(Contact).where(Contact.email == classification.recipients[0])).one()
    return replace(classification, original_message_id=make_sent(s, contact).message_id)


def _record(runtime, classification):
    with transaction(runtime.factory) as s:
        return record_feedback(s, classification=_tied(s, classification), settings=runtime.settings)


def _log(runtime) -> list[WebhookDelivery]:
    with transaction(runtime.factory) as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _verified(call) -> bool:
    # What a receiver does: the Standard Webhooks check (signature over id, timestamp and body).
    Webhook(SECRET.encode()).verify(call["body"], call["headers"])
    return True


def test_bounce_complaint_and_alert_reach_the_subscribed_endpoints_signed_and_retried(runtime) -> None:
    with WebhookReceiver() as hook:
        hook.fail["/crm"] = 1  # the CRM's first answer is a 500
        runtime.replace_settings(runtime.settings.replace(
            webhook_urls=f"{hook.url}/crm, {hook.url}/ops alert.raised contact.complained", webhook_secret=SECRET))
        with transaction(runtime.factory) as s:
            anna = make_contact(s, email="anna@licht.example").id
            bob = make_contact(s, email="bob@bulbs.example").id
            make_contact(s, email="carl@lamps.example")
        _record(runtime, HARD)
        _record(runtime, COMPLAINT)
        _record(runtime, POLICY)
        dispatch_outbox(runtime)  # fans each event out to the endpoints that subscribe to its type
        dispatch_outbox(runtime)  # the POSTs
        crm, ops = hook.bodies("/crm"), hook.bodies("/ops")
        assert [b["event"] for b in crm] == ["contact.bounced", "contact.complained", "contact.unsubscribed",
                                             "alert.raised"]
        assert [b["event"] for b in ops] == ["contact.complained", "alert.raised"]  # only what it chose
        assert all(_verified(c) for c in hook.calls)
        bounced, complained, unsubscribed, alert = crm
        assert (bounced["contact_id"], bounced["email"]) == (anna, "anna@licht.example")
        assert bounced["data"]["kind"] == "hard" and bounced["data"]["status"] == "5.1.1"
        assert bounced["data"]["suppressed"] == "hard_bounce"
        assert (complained["contact_id"], complained["data"]["feedback_type"]) == (bob, "abuse")
        assert unsubscribed["data"]["method"] == "complaint"
        assert alert["data"]["kind"] == "sender_fault" and alert["data"]["severity"] == "critical"
        assert "contact_id" not in alert  # an alert is about the sender, not a person
        assert ops[1]["id"] == alert["id"]  # one event id for every endpoint
        assert hook.calls[0]["headers"]["x-sendwell-event"] == "contact.bounced"

        log = _log(runtime)
        assert len(log) == 6
        failed = [d for d in log if d.status != "delivered"]
        assert len(failed) == 1
        first = failed[0]
        assert (first.endpoint, first.event_type, first.event_id) == (f"{hook.url}/crm", "contact.bounced", bounced["id"])
        assert (first.status, first.http_status, first.attempt, first.error) == ("retrying", 500, 1, "HTTP 500")
        assert first.next_retry_at is not None and first.next_retry_at > first.attempted_at
        assert all(d.duration_ms >= 0 and d.http_status == 204 for d in log if d.status == "delivered")

        dispatch_outbox(runtime)  # not due yet: the backoff holds
        assert len(hook.calls) == 6
        dispatch_outbox(runtime, now=datetime.now(timezone.utc) + timedelta(minutes=2))
        assert len(hook.calls) == 7
        retried = hook.calls[-1]
        assert retried["body"] == hook.calls[0]["body"] and _verified(retried)  # the same signed bytes
    last = _log(runtime)[-1]
    assert (last.event_id, last.attempt, last.status, last.http_status, last.next_retry_at) == (
        bounced["id"], 2, "delivered", 204, None)
    with transaction(runtime.factory) as s:
        assert set(s.scalars(select(OutboxMessage.status).where(OutboxMessage.kind == "webhook"))) == {"done"}


def test_a_rolled_back_bounce_tells_nobody(runtime) -> None:
    with WebhookReceiver() as hook:
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/crm"))
        with transaction(runtime.factory) as s:
            make_contact(s, email="anna@licht.example")
        with pytest.raises(RuntimeError):
            with transaction(runtime.factory) as s:
                assert record_feedback(s, classification=_tied(s, HARD), settings=runtime.settings)[0].action == \
                    "hard_bounce"
                raise RuntimeError("the request failed after recording")
        dispatch_outbox(runtime)
        dispatch_outbox(runtime)
        assert hook.calls == []
        _record(runtime, HARD)
        dispatch_outbox(runtime)
        dispatch_outbox(runtime)
        assert [b["event"] for b in hook.bodies()] == ["contact.bounced"]


def test_an_endpoint_that_keeps_failing_is_given_up_and_logged_as_failed(runtime, monkeypatch) -> None:
    monkeypatch.setattr(store, "MAX_ATTEMPTS", 2)
    with WebhookReceiver() as hook:
        hook.status["/down"] = 500
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/down contact.bounced"))
        with transaction(runtime.factory) as s:
            make_contact(s, email="anna@licht.example")
        _record(runtime, HARD)
        dispatch_outbox(runtime)
        dispatch_outbox(runtime)
        dispatch_outbox(runtime, now=datetime.now(timezone.utc) + timedelta(minutes=2))
        assert len(hook.calls) == 2
        dispatch_outbox(runtime, now=datetime.now(timezone.utc) + timedelta(days=1))
        assert len(hook.calls) == 2  # given up
    assert [(d.attempt, d.status, d.next_retry_at is None) for d in _log(runtime)] == [
        (1, "retrying", False), (2, "failed", True)]


def test_an_unreachable_endpoint_is_logged_without_a_status() -> None:
    result = deliver_webhook("http://127.0.0.1:9/hook", SECRET, b"{}", timeout=2)
    assert result.http_status is None and not result.ok and "Error" in result.error


def test_endpoint_subscriptions_are_parsed_and_bad_ones_named() -> None:
    endpoints = parse_endpoints("https://crm.example/hook, https://ops.example/h alert.raised contact.*")
    assert endpoints[0].events is None and endpoints[0].wants("contact.bounced")
    assert endpoints[1].wants("alert.raised") and endpoints[1].wants("contact.bounced")
    assert not parse_endpoints("https://x.example contact.bounced")[0].wants("alert.raised")
    with pytest.raises(ValueError, match="contact.bounce'"):
        parse_endpoints("https://x.example contact.bounce")
    with pytest.raises(ValueError, match="not an http"):
        parse_endpoints("ftp://x.example")
    from sendwell.config import Settings

    with pytest.raises(ValueError, match="SENDWELL_WEBHOOK_URLS"):
        Settings(webhook_urls="https://x.example alert.lowered")


def test_events_nobody_subscribes_to_are_skipped_with_the_reason(runtime) -> None:
    with WebhookReceiver() as hook:
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/ops alert.raised"))
        with transaction(runtime.factory) as s:
            make_contact(s, email="anna@licht.example")
        _record(runtime, HARD)
        dispatch_outbox(runtime)
        dispatch_outbox(runtime)
        assert hook.calls == []
    with transaction(runtime.factory) as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "event"))
        assert (row.status, row.last_error) == ("skipped", "no endpoint subscribes to contact.bounced")
        assert json.dumps(row.payload)  # the event itself is kept as it was
