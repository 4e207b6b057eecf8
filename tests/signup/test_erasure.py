"""Erasure (GDPR Art 17) reaches signups: a pending one goes and its link stops working; a confirmed
one keeps only its form's count. Through the CLI and the admin, over the real app."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from sendwell.cli.main import cli, register_commands
from sendwell.db.models import Contact, Event, Signup
from sendwell.db.session import transaction
from sendwell.signup import service
from sendwell.signup.mail import confirmation_url
from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.web.admin.conftest import (  # noqa: F401
    app,
    as_role,
    dkim_key_file,
    make_user,
    new_client,
    page_csrf,
)

register_commands()
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
INVALID = "This link is not valid"


@pytest.fixture
def web(app):  # noqa: F811
    with new_client(app) as client:
        client.headers["user-agent"] = BROWSER
        yield client


@pytest.fixture
def form_id(runtime):
    with transaction(runtime.factory) as session:
        return service.create_form(session, name="Canton Fair", fields=["first_name", "company"], topics=[],
                                   language="en").id


def sign_up(runtime, web, form_id, address) -> str:
    """Sign up through the public form; returns the path of the mailed confirmation link."""
    answer = web.post(f"/f/{form_id}", data={"email": address, "first_name": "Zephyrine",
                                              "company": "Quillmoor Lanterns", "consent": "yes"})
    assert answer.status_code == 200, answer.text
    with transaction(runtime.factory) as session:
        signup_id = session.scalar(select(Signup.id).where(Signup.email == address))
    return httpx.URL(confirmation_url(runtime.settings, signup_id)).path


def signups(runtime) -> int:
    with transaction(runtime.factory) as session:
        return session.scalar(select(func.count()).select_from(Signup))


def cli_erase(runtime, address: str) -> dict:
    env = {"SENDWELL_DATA_DIR": str(runtime.settings.data_dir), "SENDWELL_DATABASE_URL": runtime.settings.database_url,
           "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER, "SENDWELL_SMTP_URL": None,
           "SENDWELL_QUEUE_URL": None}
    result = CliRunner().invoke(cli, ["contacts", "erase", address, "--yes", "--json"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_erasing_an_address_deletes_its_pending_signup_and_the_link_stops_working(runtime, web, form_id) -> None:
    link = sign_up(runtime, web, form_id, "zephyrine@quillmoor.example")
    sign_up(runtime, web, form_id, "other@quillmoor.example")
    page = web.get(link)
    assert page.status_code == 200 and INVALID not in page.text  # the link works before the erasure
    erased = cli_erase(runtime, "Zephyrine@Quillmoor.example")
    assert not erased["found"]  # no contact yet: only the pending signup held the address
    assert signups(runtime) == 1  # the other person's signup stays
    for answer in (web.get(link), web.post(link)):
        assert answer.status_code == 404 and INVALID in answer.text
    with transaction(runtime.factory) as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_admin_erasure_deletes_a_pending_signup_and_strips_the_confirmed_one(runtime, web, form_id, as_role) -> None:  # noqa: F811
    confirmed_link = sign_up(runtime, web, form_id, "zephyrine@quillmoor.example")
    assert web.post(confirmed_link).status_code == 200  # confirmed: the contact exists
    # Two days later the same person signs up through another form, under another spelling.
    with transaction(runtime.factory) as session:
        contact_id = session.scalar(select(Contact.id))
        newsletter = service.create_form(session, name="Newsletter", fields=[], topics=[], language="en").id
        pending = service.submit_signup(
            session, form_id=newsletter, values={"email": "ZEPHYRINE@quillmoor.example", "consent": "yes"},
            topics=None, pepper=runtime.settings.pepper, ip="203.0.113.9", user_agent=BROWSER,
            now=datetime.now(timezone.utc) + timedelta(days=2))
    assert pending.outcome == "queued" and signups(runtime) == 2
    pending_link = httpx.URL(confirmation_url(runtime.settings, pending.signup_id)).path
    assert web.get(pending_link).status_code == 200
    admin = as_role("admin")
    token = page_csrf(admin, f"/admin/contacts/{contact_id}/erase")
    done = admin.post(f"/admin/contacts/{contact_id}/erase", data={
        "csrf_token": token, "reason": "Art 17 mail", "confirm_email": "zephyrine@quillmoor.example"})
    assert done.status_code == 303
    with transaction(runtime.factory) as session:
        assert session.get(Signup, pending.signup_id) is None
        (kept,) = session.scalars(select(Signup))  # the confirmed one: a number in its form's count
        assert (kept.email, kept.fields, kept.ip, kept.user_agent, kept.contact_id) == ("", {}, "", "", None)
        assert service.form_counts(session)[form_id]["confirmed"] == 1
        proof = session.scalar(select(Event).where(Event.kind == "signup_confirmed"))
        assert proof.contact_id is None and "signup_ip" not in proof.data and "signup_user_agent" not in proof.data
    for link in (pending_link, confirmed_link):
        answer = web.get(link)
        assert answer.status_code == 404 and INVALID in answer.text
