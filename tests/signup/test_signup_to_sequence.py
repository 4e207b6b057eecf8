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
from tests.conftest import make_settings
from tests.helpers import run_once
from tests.signup.test_flow import SCANNER, sign_up, web

__all__ = ["web"]  # the signup tests' uvicorn client, on this file's runtime

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
def mail_runtime(tmp_path, db_url, smtp_server):
    """The signup tests' runtime, with the DKIM key and privacy notice a mail step's lint asks for."""
    key = tmp_path / "dkim.pem"
    key.write_bytes(generate_private_key("ed25519"))
    rt = Runtime(make_settings(tmp_path / "data", database_url=db_url, smtp_url=smtp_server.url,
                               dkim_domain="bright-lighting.example", dkim_key_file=str(key),
                               privacy_url="https://bright-lighting.example/privacy"))
    yield rt
    rt.dispose()


@pytest.fixture
def welcome_form(mail_runtime) -> int:
    """A website signup form and the welcome sequence its confirmed signups enter."""
    with transaction(mail_runtime.factory) as session:
        form_id = service.create_form(session, name="Website", fields=["first_name"], topics=[], language="en").id
        create_sequence(session, settings=mail_runtime.settings, data=WELCOME)
    return form_id


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


def test_signup_confirmed_by_a_person_gets_the_welcome_then_step_two_three_days_later(mail_runtime, web, smtp_server,
                                                                                     welcome_form):
    _confirm(mail_runtime, web, smtp_server, welcome_form, "anna@importer.example")
    now = datetime.now(timezone.utc)
    assert _step(mail_runtime, smtp_server, now) == [("anna@importer.example", "Welcome, Anna")]
    assert _step(mail_runtime, smtp_server, now + timedelta(days=1)) == []
    assert _step(mail_runtime, smtp_server, now + timedelta(days=3, minutes=5)) == [
        ("anna@importer.example", "Our product range")]


def test_an_unsubscribe_after_the_welcome_means_no_step_two(mail_runtime, web, smtp_server, welcome_form):
    _confirm(mail_runtime, web, smtp_server, welcome_form, "ben@importer.example")
    now = datetime.now(timezone.utc)
    assert [r for r, _ in _step(mail_runtime, smtp_server, now)] == ["ben@importer.example"]
    with transaction(mail_runtime.factory) as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.email == "ben@importer.example"))
        unsubscribe_contact(session, contact_id=contact_id, method="one_click")
    assert _step(mail_runtime, smtp_server, now + timedelta(days=3, minutes=5)) == []
