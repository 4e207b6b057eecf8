"""Webhook signatures follow Standard Webhooks: a receiver verifies them with the `standardwebhooks`
library, a replay with an old timestamp is refused, and the secret is a webhook secret of its own
(never the master secret key), generated on first need. Real HTTP receiver on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from sendwell.bootstrap import initialise
from sendwell.config import load_settings, read_config_file
from sendwell.db.session import transaction
from sendwell.followups import dispatch_outbox
from sendwell.webhooks.delivery import deliver_webhook, new_webhook_secret
from sendwell.webhooks.service import emit_event
from tests.helpers import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def _one_event(runtime) -> None:
    with transaction(runtime.factory) as s:
        emit_event(s, event_type="alert.raised", data={"kind": "test"})
    dispatch_outbox(runtime)  # fan-out
    dispatch_outbox(runtime)  # the POST


def test_a_receiver_verifies_the_standard_webhooks_signature(runtime) -> None:
    with WebhookReceiver() as hook:
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/crm", webhook_secret=SECRET))
        _one_event(runtime)
        (call,) = hook.calls
    headers = call["headers"]
    assert Webhook(SECRET).verify(call["body"], headers)["event"] == "alert.raised"
    # The same by hand, from the published scheme: base64 HMAC-SHA256 of "id.timestamp.body".
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + call["body"]
    expected = base64.b64encode(hmac.new(b"k" * 32, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"].split() == [f"v1,{expected}"]
    assert abs(int(headers["webhook-timestamp"]) - datetime.now(timezone.utc).timestamp()) < 60


def test_a_replayed_delivery_with_an_old_timestamp_is_refused() -> None:
    with WebhookReceiver() as hook:
        old = datetime.now(timezone.utc) - timedelta(minutes=10)
        assert deliver_webhook(f"{hook.url}/crm", SECRET, b'{"id":1}', message_id="1", at=old).ok
        (call,) = hook.calls
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(call["body"], call["headers"])
    # Moving the timestamp forward breaks the signature instead.
    fresh = dict(call["headers"], **{"webhook-timestamp": str(int(datetime.now(timezone.utc).timestamp()))})
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(SECRET).verify(call["body"], fresh)


def test_the_webhook_secret_is_made_on_first_need_and_is_not_the_secret_key(runtime) -> None:
    assert not runtime.settings.webhook_secret
    with WebhookReceiver() as hook:
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/crm"))
        _one_event(runtime)
        (call,) = hook.calls
    stored = read_config_file(runtime.settings.config_file)["webhook_secret"]
    assert stored.startswith("whsec_") and stored == runtime.settings.webhook_secret
    assert stored not in runtime.settings.secret_key and len(base64.b64decode(stored[6:])) == 32
    Webhook(stored).verify(call["body"], call["headers"])
    for key in runtime.settings.secret_keys:  # the master key opens nothing
        with pytest.raises(WebhookVerificationError):
            Webhook(key.encode()).verify(call["body"], call["headers"])


def test_init_makes_a_webhook_secret_when_webhook_urls_are_set(tmp_path) -> None:
    settings = load_settings(data_dir=tmp_path, webhook_urls="https://crm.example/hook",
                             database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    settings, created = initialise(settings, webhook_urls="https://crm.example/hook",
                                   database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert created.get("webhook_secret") and settings.webhook_secret.startswith("whsec_")
    assert settings.webhook_secret not in settings.secret_key
    again, created = initialise(settings, webhook_urls="https://crm.example/hook",
                                database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert "webhook_secret" not in created and again.webhook_secret == settings.webhook_secret
    assert new_webhook_secret() != new_webhook_secret()
