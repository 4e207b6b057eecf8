"""/webhooks: endpoints, the delivery log (paged, filtered) and redelivery, over a real HTTP receiver."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from sendwell.db.models import Contact
from sendwell.db.session import transaction
from sendwell.feedback.classify import Classification
from sendwell.feedback.service import record_feedback
from sendwell.followups import dispatch_outbox
from sendwell.outbox import store as outbox
from tests.feedback.factories import make_sent
from tests.helpers import WebhookReceiver
from tests.web.api.conftest import assert_problem

API = "/api/v1"


def _bounce(runtime, email: str) -> None:
    with transaction(runtime.factory) as s:
        # As a real bounce arrives: quoting the Message-ID of the mail we sent to that address.
        contact = s.scalars(select(Contact).where(Contact.email == email)).one()
        record_feedback(s, classification=Classification(kind="hard", recipients=(email,), status="5.1.1",
                                                         reason="user unknown",
                                                         original_message_id=make_sent(s, contact).message_id),
                        settings=runtime.settings)


def _contacts(client, admin, *emails: str) -> list[int]:
    return [client.post(f"{API}/contacts", headers=admin, json={"email": e}).json()["id"] for e in emails]


def test_the_delivery_log_is_paged_and_filtered(client, admin, auth, runtime) -> None:
    with WebhookReceiver() as hook:
        hook.fail["/crm"] = 1
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/crm"))
        ids = _contacts(client, admin, "a@x.example", "b@x.example")
        _bounce(runtime, "a@x.example")
        client.post(f"{API}/contacts/{ids[1]}/unsubscribe", headers=admin)
        dispatch_outbox(runtime)
        dispatch_outbox(runtime)
    reader = auth("webhooks:read")
    page = client.get(f"{API}/webhooks/deliveries", headers=reader)
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert [(d["event_type"], d["status"], d["http_status"], d["attempt"]) for d in items] == [
        ("contact.bounced", "retrying", 500, 1), ("contact.unsubscribed", "delivered", 204, 1)]
    assert items[0]["next_retry_at"] and items[0]["error"] == "HTTP 500" and items[0]["endpoint"] == f"{hook.url}/crm"
    first = client.get(f"{API}/webhooks/deliveries", params={"limit": 1}, headers=reader).json()
    assert len(first["items"]) == 1 and first["next_after"] == items[0]["id"]
    rest = client.get(f"{API}/webhooks/deliveries", params={"after": first["next_after"]}, headers=reader).json()
    assert [d["id"] for d in rest["items"]] == [items[1]["id"]] and rest["next_after"] is None
    by_type = client.get(f"{API}/webhooks/deliveries", params={"event_type": "contact.unsubscribed"}, headers=reader).json()
    assert [d["event_type"] for d in by_type["items"]] == ["contact.unsubscribed"]
    by_status = client.get(f"{API}/webhooks/deliveries", params={"status": "retrying"}, headers=reader).json()
    assert [d["id"] for d in by_status["items"]] == [items[0]["id"]]
    one = client.get(f"{API}/webhooks/deliveries/{items[0]['id']}", headers=reader).json()
    assert one == items[0]
    assert_problem(client.get(f"{API}/webhooks/deliveries", params={"status": "lost"}, headers=reader), 422, "query.status")
    assert_problem(client.get(f"{API}/webhooks/deliveries", params={"event_type": "contact.bored"}, headers=reader),
                   422, "query.event_type")
    assert_problem(client.get(f"{API}/webhooks/deliveries/999999", headers=reader), 404)
    assert_problem(client.get(f"{API}/webhooks/deliveries", headers=auth("contacts:read")), 403)


def test_a_failed_delivery_is_redelivered_through_the_api(client, admin, auth, runtime, monkeypatch) -> None:
    monkeypatch.setattr(outbox, "MAX_ATTEMPTS", 1)  # give up at the first failure
    with WebhookReceiver() as hook:
        hook.status["/crm"] = 503
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/crm contact.bounced",
                                                          webhook_secret="crm-shared-secret"))
        _contacts(client, admin, "a@x.example")
        _bounce(runtime, "a@x.example")
        dispatch_outbox(runtime)
        dispatch_outbox(runtime)
        [failed] = client.get(f"{API}/webhooks/deliveries", params={"status": "failed"}, headers=admin).json()["items"]
        assert failed["http_status"] == 503 and failed["next_retry_at"] is None

        writer = auth("webhooks:write")
        assert_problem(client.post(f"{API}/webhooks/deliveries/{failed['id']}/redeliver", headers=auth("webhooks:read")), 403)
        del hook.status["/crm"]  # the CRM is back
        again = client.post(f"{API}/webhooks/deliveries/{failed['id']}/redeliver", headers=writer)
        assert again.status_code == 202, again.text
        assert again.json()["event_id"] == failed["event_id"]
        # Scheduled, not yet made: a second request is refused rather than doubled.
        assert_problem(client.post(f"{API}/webhooks/deliveries/{failed['id']}/redeliver", headers=writer), 409)
        dispatch_outbox(runtime, now=datetime.now(timezone.utc) + timedelta(seconds=1))
        assert len(hook.calls) == 2 and hook.calls[0]["body"] == hook.calls[1]["body"]
    log = client.get(f"{API}/webhooks/deliveries", headers=admin).json()["items"]
    assert [(d["attempt"], d["status"], d["http_status"]) for d in log] == [(1, "failed", 503), (2, "delivered", 204)]
    assert_problem(client.post(f"{API}/webhooks/deliveries/999999/redeliver", headers=writer), 404)


def test_redelivery_of_an_erased_contacts_event_is_refused(client, admin, runtime) -> None:
    with WebhookReceiver() as hook:
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/crm"))
        [cid] = _contacts(client, admin, "a@x.example")
        _bounce(runtime, "a@x.example")
        dispatch_outbox(runtime)
        dispatch_outbox(runtime)
    [delivered] = client.get(f"{API}/webhooks/deliveries", headers=admin).json()["items"]
    assert client.delete(f"{API}/contacts/{cid}", headers=admin).status_code == 200
    # The attempt stays in the log (it holds no address); the body with the address is gone.
    assert client.get(f"{API}/webhooks/deliveries/{delivered['id']}", headers=admin).json()["status"] == "delivered"
    assert_problem(client.post(f"{API}/webhooks/deliveries/{delivered['id']}/redeliver", headers=admin), 409)


def test_endpoints_and_event_types_are_listed_without_the_secret(client, auth, runtime) -> None:
    runtime.replace_settings(runtime.settings.replace(
        webhook_urls="https://crm.example/hook, https://ops.example/hook alert.raised", webhook_secret="never-shown"))
    got = client.get(f"{API}/webhooks/endpoints", headers=auth("webhooks:read"))
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["endpoints"] == [{"url": "https://crm.example/hook", "events": ["*"]},
                                 {"url": "https://ops.example/hook", "events": ["alert.raised"]}]
    assert {"contact.bounced", "contact.complained", "alert.raised", "contact.unsubscribed"} <= set(body["event_types"])
    assert "never-shown" not in got.text
