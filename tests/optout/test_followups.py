"""After an opt-out: the one thank-you mail (real SMTP), undo by its link, double opt-in, webhooks."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import select

from sendwell.db.models import Consent, Event, OutboxMessage, Suppression
from sendwell.db.session import transaction
from sendwell.followups import dispatch_outbox
from sendwell.optout.service import unsubscribe_contact
from sendwell.suppression.service import suppress
from sendwell.web.server import BackgroundServer
from sendwell.webhooks.delivery import SIGNATURE_HEADER, sign_body
from tests.helpers import make_contact, parse_strict
from tests.optout.conftest import count, outbox, suppressed, u


@pytest.fixture
def mail_runtime(runtime, smtp_server):
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url, contact_phone="+86 574 8888 6666"))
    return runtime


def _unsubscribe(runtime, contact_id, method="one_click"):
    with transaction(runtime.factory) as s:
        return unsubscribe_contact(s, contact_id=contact_id, method=method, ip="198.51.100.7", user_agent="Mail/1")


def test_thank_you_mail_is_short_localised_transactional_and_undo_works(mail_runtime, smtp_server, web) -> None:
    with transaction(mail_runtime.factory) as s:
        c = make_contact(s, email="li@shop.example", language="zh")
    assert web.post(u(mail_runtime, c.id), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert dispatch_outbox(mail_runtime)["done"] == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [["li@shop.example"]]
    msg = parse_strict(smtp_server.messages[0].data)
    assert "退订" in str(msg["Subject"]) or "退订" in msg.get_body(("plain",)).get_content()
    assert msg["List-Unsubscribe"] is None and msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert "88 Jiangnan Road" in body and "sales@bright-lighting.example" in body and "+86 574 8888 6666" in body
        assert "撤销" in body  # the undo link's label, localised
    assert len(text) < 1200  # one short mail
    undo_path = "/u/" + text.split("/u/", 1)[1].split()[0]
    assert "/undo" in web.get(undo_path).text  # GET shows the state and the button, changes nothing
    assert suppressed(mail_runtime) == 1
    assert web.post(undo_path + "/undo").status_code == 200
    assert suppressed(mail_runtime) == 0
    assert count(mail_runtime, Event, kind="thank_you_sent") == 1


def test_thank_you_is_never_sent_twice(mail_runtime, smtp_server, web) -> None:
    with transaction(mail_runtime.factory) as s:
        c = make_contact(s)
    _unsubscribe(mail_runtime, c.id)
    _unsubscribe(mail_runtime, c.id, method="page")  # idempotent repeat
    dispatch_outbox(mail_runtime)
    web.post(u(mail_runtime, c.id) + "/undo")
    _unsubscribe(mail_runtime, c.id, method="mailto")  # leaves again later, by another method
    dispatch_outbox(mail_runtime)
    dispatch_outbox(mail_runtime)
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("how", ["complaint_method", "complaint_after_opt_out", "complained_event"])
def test_thank_you_is_never_sent_after_a_complaint(mail_runtime, smtp_server, how) -> None:
    with transaction(mail_runtime.factory) as s:
        c = make_contact(s)
    if how == "complaint_method":
        _unsubscribe(mail_runtime, c.id, method="complaint")
    else:
        _unsubscribe(mail_runtime, c.id)
        with transaction(mail_runtime.factory) as s:
            if how == "complaint_after_opt_out":
                # The feedback loop later reports this contact's complaint: the suppression's
                # reason becomes a complaint before the thank-you goes out.
                s.execute(Suppression.__table__.update().where(Suppression.contact_id == c.id)
                          .values(reason="complaint"))
            else:
                s.add(Event(kind="complained", contact_id=c.id, data={"feedback_type": "abuse"}))
    dispatch_outbox(mail_runtime)
    assert smtp_server.messages == []


def test_thank_you_is_configurable_per_region(mail_runtime, smtp_server) -> None:
    mail_runtime.replace_settings(mail_runtime.settings.replace(thank_you_regions="us,ca"))
    with transaction(mail_runtime.factory) as s:
        eu, us = make_contact(s, country="DE"), make_contact(s, country="US")
    _unsubscribe(mail_runtime, eu.id)
    _unsubscribe(mail_runtime, us.id)
    dispatch_outbox(mail_runtime)
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [us.email]
    statuses = {row.contact_id: row.status for row in outbox(mail_runtime, "thank_you")}
    assert statuses == {eu.id: "skipped", us.id: "done"}


@pytest.mark.parametrize("method", ["mailto", "reply", "admin", "api"])
def test_every_opt_out_method_gets_the_thank_you(mail_runtime, smtp_server, method) -> None:
    with transaction(mail_runtime.factory) as s:
        c = make_contact(s)
    _unsubscribe(mail_runtime, c.id, method=method)
    dispatch_outbox(mail_runtime)
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [c.email]


def test_smtp_down_retries_later_and_the_opt_out_stands(runtime, unused_port) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=f"smtp://127.0.0.1:{unused_port}", smtp_timeout=2))
    with transaction(runtime.factory) as s:
        c = make_contact(s)
    _unsubscribe(runtime, c.id)
    assert dispatch_outbox(runtime)["retry"] == 1
    [row] = outbox(runtime, "thank_you")
    assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at > datetime.now(timezone.utc)
    assert suppressed(runtime) == 1


def test_a_complaint_is_lifted_only_by_a_double_opt_in(mail_runtime, smtp_server, web) -> None:
    with transaction(mail_runtime.factory) as s:
        c = make_contact(s, language="en")
        suppress(s, email_hash=c.email_hash, reason="complaint", contact_id=c.id)
    undo = web.post(u(mail_runtime, c.id) + "/undo")
    assert "Please confirm by mail" in undo.text
    assert count(mail_runtime, Suppression) == 1  # the undo alone lifts nothing
    dispatch_outbox(mail_runtime)
    [received] = smtp_server.messages
    text = parse_strict(received.data).get_body(("plain",)).get_content()
    confirm = "/c/" + text.split("/c/", 1)[1].split()[0]
    assert "Yes, send me mail again" in web.get(confirm).text
    assert count(mail_runtime, Suppression) == 1  # GET changes nothing
    assert web.post(confirm[:-4] + "AAAA").status_code == 400
    assert "Welcome back" in web.post(confirm).text
    assert count(mail_runtime, Suppression) == 0
    with transaction(mail_runtime.factory) as s:
        consent = s.scalars(select(Consent).order_by(Consent.id.desc())).first()
        assert consent.source == "resubscribe" and "double opt-in" in consent.wording.lower()
        assert s.scalar(select(Event.method).where(Event.kind == "resubscribed")) == "double_opt_in"


def test_a_complaint_after_the_opt_out_also_blocks_the_plain_undo(runtime, web) -> None:
    with transaction(runtime.factory) as s:
        c = make_contact(s, language="en")
    _unsubscribe(runtime, c.id)
    with transaction(runtime.factory) as s:
        s.add(Event(kind="complained", contact_id=c.id, data={"feedback_type": "abuse"}))
    assert "Please confirm by mail" in web.post(u(runtime, c.id) + "/undo").text
    assert suppressed(runtime) == 1 and len(outbox(runtime, "confirm")) == 1


def test_confirmation_links_expire(runtime) -> None:
    from sendwell.optout.tokens import InvalidToken, make_confirm_token, read_confirm_token

    token = make_confirm_token(runtime.settings.secret_keys, 5)
    assert read_confirm_token(runtime.settings.secret_keys, token) == 5
    with pytest.raises(InvalidToken):
        read_confirm_token(runtime.settings.secret_keys, token, max_age=-1)


class Receiver:
    """A real HTTP endpoint that records webhook calls and fails the first `fail` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.calls, self.lock = fail, [], threading.Lock()
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.calls.append((body, request.headers.get(SIGNATURE_HEADER)))
                failing = len(self.calls) <= self.fail
            return Response(status_code=500 if failing else 204)


def test_webhooks_are_signed_and_retried_with_backoff(runtime, web, unused_port) -> None:
    from sendwell.demo.smtp_server import free_port

    receiver = Receiver(fail=1)
    with BackgroundServer(receiver.app, free_port()) as hook:
        runtime.replace_settings(runtime.settings.replace(webhook_urls=f"{hook.url}/hook",
                                                          webhook_secret="crm-shared-secret"))
        with transaction(runtime.factory) as s:
            c = make_contact(s, language="en")
        web.post(u(runtime, c.id) + "/alternative", data={"choice": "monthly"})
        web.post(u(runtime, c.id), data={"List-Unsubscribe": "One-Click"})
        dispatch_outbox(runtime)  # fans the two events out to the endpoint
        dispatch_outbox(runtime)  # first call fails (500), the second succeeds
        assert len(receiver.calls) == 2
        pending = [r for r in outbox(runtime, "webhook") if r.status == "pending"]
        assert len(pending) == 1 and pending[0].attempts == 1
        dispatch_outbox(runtime)  # not yet due: backoff
        assert len(receiver.calls) == 2
        dispatch_outbox(runtime, now=datetime.now(timezone.utc) + timedelta(minutes=2))
        assert len(receiver.calls) == 3
    assert all(r.status == "done" for r in outbox(runtime, "webhook"))
    events = set()
    for body, signature in receiver.calls:
        assert signature == sign_body("crm-shared-secret", body)
        payload = json.loads(body)
        assert payload["contact_id"] == c.id
        events.add(payload["event"])
    assert events == {"contact.preferences_changed", "contact.unsubscribed"}


def test_without_endpoints_events_are_skipped_not_kept(runtime, web) -> None:
    with transaction(runtime.factory) as s:
        c = make_contact(s)
    web.post(u(runtime, c.id), data={"List-Unsubscribe": "One-Click"})
    runtime.replace_settings(runtime.settings.replace(thank_you_regions="none"))
    dispatch_outbox(runtime)
    with transaction(runtime.factory) as s:
        assert set(s.scalars(select(OutboxMessage.status))) == {"skipped"}
