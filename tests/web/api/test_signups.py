"""POST /api/v1/signups: the scope, the same 202 whatever the address, and the queued confirmation mail."""

from __future__ import annotations

from sqlalchemy import func, select

from sendwell.contacts.records import create_topic
from sendwell.db.models import OutboxMessage, Signup
from sendwell.db.session import transaction
from sendwell.signup import service
from sendwell.suppression.service import hash_email, suppress
from tests.web.api.conftest import assert_problem


def make_form(runtime) -> int:
    with transaction(runtime.factory) as session:
        create_topic(session, slug="led-news", name="LED news")
        return service.create_form(session, name="Website", fields=["company"], topics=["led-news"]).id


def mails(runtime) -> int:
    with transaction(runtime.factory) as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == service.MAIL_KIND))


def test_signups_need_their_scope(client, auth, runtime):
    form = make_form(runtime)
    body = {"form": form, "email": "anna@importer.example"}
    assert_problem(client.post("/api/v1/signups", json=body), 401)
    assert_problem(client.post("/api/v1/signups", json=body, headers=auth("contacts:write")), 403)
    assert client.post("/api/v1/signups", json=body, headers=auth("signups:write")).status_code == 202


def test_the_answer_is_202_whatever_the_address(client, auth, runtime):
    form = make_form(runtime)
    with transaction(runtime.factory) as session:
        suppress(session, email_hash=hash_email(runtime.settings.pepper, "gone@importer.example"), reason="complaint")
    headers = auth("signups:write")
    answers = [client.post("/api/v1/signups", headers=headers, json={
        "form": form, "email": address, "company": "Importer GmbH", "ip": "203.0.113.5", "user_agent": "Firefox"})
        for address in ("anna@importer.example", "gone@importer.example", "anna@importer.example")]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.text for a in answers}) == 1
    assert mails(runtime) == 1
    with transaction(runtime.factory) as session:
        signup = session.scalar(select(Signup))
        assert (signup.email, signup.fields, signup.topics, signup.ip) == (
            "anna@importer.example", {"company": "Importer GmbH"}, ["led-news"], "203.0.113.5")


def test_an_unknown_form_is_404_and_an_invalid_address_422(client, auth, runtime):
    headers = auth("signups:write")
    assert_problem(client.post("/api/v1/signups", headers=headers, json={"form": 99, "email": "a@b.example"}), 404)
    form = make_form(runtime)
    assert_problem(client.post("/api/v1/signups", headers=headers, json={"form": form, "email": "nope"}), 422,
                   "email")


def test_the_openapi_document_describes_signups(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert "202" in spec["paths"]["/signups"]["post"]["responses"]
