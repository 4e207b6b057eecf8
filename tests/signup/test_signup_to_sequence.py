"""From a signup form to a welcome sequence over real parts: uvicorn, the outbox, an SMTP server, the planner."""

from __future__ import annotations

import email
import re
from datetime import datetime, timedelta, timezone
from email import policy

import httpx
import pytest
from sqlalchemy import select

from sendwell.db.models import Contact
from sendwell.db.session import transaction
from sendwell.delivery.dkim import generate_private_key
from sendwell.followups import dispatch_outbox
from sendwell.optout.service import unsubscribe_contact
from sendwell.runtime import Runtime
from sendwell.sequences.service import advance, create_sequence
from sendwell.signup import service
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.conftest import make_settings
from tests.helpers import run_once
from tests.signup.test_flow import BROWSER, SCANNER, sign_up

WELCOME = {
    "name": "Website welcome",
    "trigger": {"kind": "signup_confirmed"},
    "steps": [
        {"id": "welcome", "kind": "mail", "subject": "Welcome, {{ contact.first_name }}",
         "html": "<p>Dear {{ contact.first_name }}, thank you for subscribing to our LED news.</p>"},
        {"id": "wait-3d", "kind": "wait", "days": 3},
        {"id": "range", "kind": "mail", "subject": "Our product range",
         "html": "<p>Dear {{ contact.first_name }}, here is what we make.</p>"},
    ],
}


@pytest.fixture
def runtime(tmp_path, db_url, smtp_server):
    key = tmp_path / "dkim.pem"
    key.write_bytes(generate_private_key("ed25519"))
    rt = Runtime(make_settings(tmp_path / "data", database_url=db_url, smtp_url=smtp_server.url,
                               dkim_domain="bright-lighting.example", dkim_key_file=str(key),
                               privacy_url="https://bright-lighting.example/privacy"))
    yield rt
    rt.dispose()


@pytest.fixture
def web(runtime, unused_port):
    with BackgroundServer(create_app(runtime, outbox=False), unused_port) as srv:
        with httpx.Client(base_url=srv.url, timeout=30, headers={"user-agent": BROWSER}) as client:
            yield client


def _confirm(runtime, web, smtp_server, form_id: int, address: str) -> None:
    """Sign up, read the confirmation mail, let a scanner fetch the link, then confirm as a person."""
    before = len(smtp_server.messages)
    assert sign_up(web, form_id, address).status_code == 200
    dispatch_outbox(runtime)
    (mail,) = smtp_server.messages[before:]
    text = email.message_from_bytes(mail.data, policy=policy.default).get_body(("plain",)).get_content()
    path = httpx.URL(re.search(r"https://\S+/f/c/\S+", text).group(0)).path
    web.get(path, headers={"user-agent": SCANNER})
    assert _step(runtime, smtp_server, datetime.now(timezone.utc)) == []  # a scanner confirmed nobody
    assert web.post(path).status_code == 200


def _step(runtime, smtp_server, now: datetime) -> list[tuple[str, str]]:
    """Advance the sequences as of `now`, deliver what they queued; (recipient, subject) of the new mails."""
    before = len(smtp_server.messages)
    with transaction(runtime.factory) as session:
        report = advance(session, settings=runtime.settings, now=now)
    for campaign_id in {c for c, _ in report["batches"]}:
        run_once(runtime, campaign_id)
    return [(m.rcpt_tos[0], email.message_from_bytes(m.data, policy=policy.default)["Subject"])
            for m in smtp_server.messages[before:]]


def test_signup_confirmed_by_a_person_gets_the_welcome_then_step_two_three_days_later(runtime, web, smtp_server):
    with transaction(runtime.factory) as session:
        form_id = service.create_form(session, name="Website", fields=["first_name"], topics=[], language="en").id
        create_sequence(session, settings=runtime.settings, data=WELCOME)
    _confirm(runtime, web, smtp_server, form_id, "anna@importer.example")
    now = datetime.now(timezone.utc)
    assert _step(runtime, smtp_server, now) == [("anna@importer.example", "Welcome, Anna")]
    assert _step(runtime, smtp_server, now + timedelta(days=1)) == []
    assert _step(runtime, smtp_server, now + timedelta(days=3, minutes=5)) == [
        ("anna@importer.example", "Our product range")]


def test_an_unsubscribe_after_the_welcome_means_no_step_two(runtime, web, smtp_server):
    with transaction(runtime.factory) as session:
        form_id = service.create_form(session, name="Website", fields=["first_name"], topics=[], language="en").id
        create_sequence(session, settings=runtime.settings, data=WELCOME)
    _confirm(runtime, web, smtp_server, form_id, "ben@importer.example")
    now = datetime.now(timezone.utc)
    assert [r for r, _ in _step(runtime, smtp_server, now)] == ["ben@importer.example"]
    with transaction(runtime.factory) as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.email == "ben@importer.example"))
        unsubscribe_contact(session, contact_id=contact_id, method="one_click")
    assert _step(runtime, smtp_server, now + timedelta(days=3, minutes=5)) == []
