"""The notify step: a signed JSON POST per contact through the webhooks' outbox, to a real receiver on loopback."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from sendwell.db.models import WebhookDelivery
from sendwell.db.session import transaction
from sendwell.followups import dispatch_outbox
from sendwell.sequences.definition import DefinitionError, parse_definition
from sendwell.sequences.report import enrollments, step_runs
from sendwell.sequences.service import advance
from tests.helpers import WebhookReceiver
from tests.sequences.test_sequences import (
    _advance,
    _create,
    _tagged,
    dkim_key,
    runtime,
)

__all__ = ["dkim_key", "runtime"]  # fixtures pytest finds by name

SECRET = "crm-shared-secret"  # a plain string keys as its bytes


def _notifying(url: str) -> dict:
    return {"name": "Fair leads to the CRM", "trigger": {"kind": "tag_added", "tag": "fair-2026"},
            "steps": [{"id": "tell-crm", "kind": "notify", "url": url, "event": "fair.lead"},
                      {"id": "mark", "kind": "set", "tag": "crm-told"}]}


def test_notify_posts_a_signed_payload_once_and_retries_a_failure(runtime) -> None:
    with WebhookReceiver() as hook:
        hook.fail["/crm"] = 1  # the CRM's first answer is a 500
        runtime.replace_settings(runtime.settings.replace(webhook_secret=SECRET))
        sequence_id = _create(runtime, _notifying(f"{hook.url}/crm"))
        contact_id, address = _tagged(runtime)
        _advance(runtime)
        _advance(runtime)  # the step is done: nothing more is queued
        dispatch_outbox(runtime)
        assert len(hook.calls) == 1 and hook.calls[0]["path"] == "/crm"
        dispatch_outbox(runtime, now=datetime.now(timezone.utc) + timedelta(minutes=2))  # the retry
        assert len(hook.calls) == 2
        first, retried = hook.calls
        assert retried["body"] == first["body"]  # the same signed bytes, the same webhook-id
        assert retried["headers"]["webhook-id"] == first["headers"]["webhook-id"]
        # What the receiver does: the Standard Webhooks check over id, timestamp and body.
        Webhook(SECRET.encode()).verify(retried["body"], retried["headers"])
        with pytest.raises(WebhookVerificationError):
            Webhook(b"another-secret").verify(retried["body"], retried["headers"])
        body = json.loads(retried["body"])
        assert (body["event"], body["contact_id"], body["email"]) == ("fair.lead", contact_id, address)
        assert body["data"] == {"sequence_id": sequence_id, "sequence": "Fair leads to the CRM",
                                "step_id": "tell-crm", "version": 1}
        assert datetime.fromisoformat(body["occurred_at"]) <= datetime.now(timezone.utc)
        assert retried["headers"]["x-sendwell-event"] == "fair.lead"
        dispatch_outbox(runtime, now=datetime.now(timezone.utc) + timedelta(hours=1))
        assert len(hook.calls) == 2  # delivered: not posted again
    with transaction(runtime.factory) as s:
        log = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        assert [(d.endpoint, d.event_type, d.status, d.http_status) for d in log] == [
            (f"{hook.url}/crm", "fair.lead", "retrying", 500), (f"{hook.url}/crm", "fair.lead", "delivered", 204)]
        assert [(r.step_id, r.kind, r.outcome) for r in step_runs(s, sequence_id=sequence_id)] == [
            ("tell-crm", "notify", "queued"), ("mark", "set", "set")]
        assert [e.state for e in enrollments(s, sequence_id=sequence_id)] == ["done"]


def test_a_rolled_back_advance_posts_nothing(runtime) -> None:
    with WebhookReceiver() as hook:
        runtime.replace_settings(runtime.settings.replace(webhook_secret=SECRET))
        _create(runtime, _notifying(f"{hook.url}/crm"))
        _tagged(runtime)
        with pytest.raises(RuntimeError), transaction(runtime.factory) as s:
            advance(s, settings=runtime.settings)
            raise RuntimeError("the advance failed after the step ran")
        dispatch_outbox(runtime)
        assert hook.calls == []


@pytest.mark.parametrize("url, ok", [
    ("https://crm.example/hooks/sendwell", True),
    ("http://127.0.0.1:8080/hook", True),
    ("http://localhost/hook", True),
    ("http://[::1]:8080/hook", True),
    ("http://crm.example/hook", False),  # a contact's address in clear over a network
    ("http://127.example/hook", False),
    ("ftp://crm.example/hook", False),
    ("https://", False),
    ("", False),
])
def test_notify_url_must_be_https_or_loopback(url: str, ok: bool) -> None:
    definition = _notifying(url)
    if ok:
        assert parse_definition(definition).step("tell-crm")["url"] == url
    else:
        with pytest.raises(DefinitionError, match=r"tell-crm\)\.url"):
            parse_definition(definition)


def test_notify_event_name_is_checked() -> None:
    definition = _notifying("https://crm.example/hook")
    definition["steps"][0]["event"] = "Fair Lead!"
    with pytest.raises(DefinitionError, match=r"tell-crm\)\.event"):
        parse_definition(definition)
