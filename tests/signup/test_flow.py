"""The whole double opt-in over real parts: uvicorn, the outbox dispatcher and an SMTP server."""

from __future__ import annotations

import email
import re
from email import policy

import httpx
import pytest
from sqlalchemy import func, select

from sendwell.contacts.records import create_topic
from sendwell.db.models import Consent, Contact, Event, OutboxMessage, Signup, Subscription
from sendwell.db.session import transaction
from sendwell.followups import dispatch_outbox
from sendwell.runtime import Runtime
from sendwell.signup import service
from sendwell.suppression.service import hash_email, suppress
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.conftest import make_settings

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link protection)"


@pytest.fixture
def mail_runtime(tmp_path, db_url, smtp_server):
    rt = Runtime(make_settings(tmp_path / "data", database_url=db_url, smtp_url=smtp_server.url))
    yield rt
    rt.dispose()


@pytest.fixture
def web(mail_runtime, unused_port):
    with BackgroundServer(create_app(mail_runtime, outbox=False), unused_port) as srv:
        with httpx.Client(base_url=srv.url, timeout=30, headers={"user-agent": BROWSER}) as client:
            yield client


@pytest.fixture
def form_id(mail_runtime):
    with transaction(mail_runtime.factory) as session:
        create_topic(session, slug="led-news", name="LED news")
        return service.create_form(session, name="Canton Fair", fields=["first_name"], topics=["led-news"],
                                   language="de").id


def sign_up(web, form_id, address, **extra):
    data = {"email": address, "first_name": "Anna", "topic": "led-news", "consent": "yes", **extra}
    return web.post(f"/f/{form_id}", data=data)


def count(runtime, model, *where) -> int:
    with transaction(runtime.factory) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_signup_mail_link_scanner_get_and_person_post(mail_runtime, web, form_id, smtp_server):
    page = web.get(f"/f/{form_id}")
    assert page.status_code == 200 and 'name="url"' in page.text and "Canton Fair" in page.text
    answer = sign_up(web, form_id, "anna@importer.example")
    assert answer.status_code == 200 and "Postfach" in answer.text  # the form's language: German
    dispatch_outbox(mail_runtime)
    assert len(smtp_server.messages) == 1
    received = smtp_server.messages[0]
    assert received.rcpt_tos == ["anna@importer.example"]
    message = email.message_from_bytes(received.data, policy=policy.default)
    assert "Abonnement" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    link = re.search(r"https://\S+/f/c/\S+", text).group(0)
    path = httpx.URL(link).path
    # A security gateway fetches the link, and even POSTs to it: neither confirms.
    assert web.get(path, headers={"user-agent": SCANNER}).status_code == 200
    page = web.get(path)
    assert page.status_code == 200 and "Abonnement bestätigen" in page.text
    assert web.post(path, headers={"user-agent": SCANNER}).status_code == 200
    assert count(mail_runtime, Contact) == 0
    assert count(mail_runtime, Signup, Signup.confirmed_at.is_not(None)) == 0
    done = web.post(path)
    assert done.status_code == 200 and "angemeldet" in done.text and "an***@importer.example" in done.text
    assert "an***@importer.example" in web.get(path).text  # "already confirmed", from the masked address kept
    with transaction(mail_runtime.factory) as session:
        contact = session.scalar(select(Contact))
        assert (contact.email, contact.first_name, contact.language) == ("anna@importer.example", "Anna", "de")
        assert session.scalar(select(Subscription.status).where(Subscription.contact_id == contact.id)) == "subscribed"
        consent = session.scalar(select(Consent).where(Consent.contact_id == contact.id))
        assert consent.source == f"signup form {form_id}" and consent.ip == "127.0.0.1"
        proof = session.scalar(select(Event).where(Event.kind == "signup_confirmed"))
        assert proof.user_agent == BROWSER and proof.data["signup_user_agent"] == BROWSER


def test_the_answer_is_the_same_whatever_the_address(mail_runtime, web, form_id, smtp_server):
    with transaction(mail_runtime.factory) as session:
        suppress(session, email_hash=hash_email(mail_runtime.settings.pepper, "bounced@importer.example"),
                 reason="hard_bounce")
    answers = [
        sign_up(web, form_id, "new@importer.example"),
        sign_up(web, form_id, "bounced@importer.example"),
        sign_up(web, form_id, "new@importer.example"),  # again within a day
        sign_up(web, form_id, "bot@spam.example", url="http://spam.example"),  # the honeypot
    ]
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    dispatch_outbox(mail_runtime)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["new@importer.example"]]
    assert count(mail_runtime, OutboxMessage) == 1


def test_an_invalid_address_or_missing_consent_shows_the_form_again(web, form_id):
    bad = sign_up(web, form_id, "not an address")
    assert bad.status_code == 422 and "gültige" in bad.text
    unticked = web.post(f"/f/{form_id}", data={"email": "a@importer.example", "topic": "led-news"})
    assert unticked.status_code == 422
    assert web.get("/f/999").status_code == 404


def test_a_forged_or_oversized_request_changes_nothing(mail_runtime, web, form_id):
    assert web.get("/f/c/not-a-token").status_code == 404
    assert web.post("/f/c/not-a-token").status_code == 404
    big = web.post(f"/f/{form_id}", data={"email": "a@importer.example", "first_name": "x" * 20_000})
    assert big.status_code == 413
    assert count(mail_runtime, Signup) == 0
