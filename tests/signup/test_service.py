"""Signup forms and double opt-in as service calls, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from sendwell.contacts.records import create_topic
from sendwell.db.models import (
    Consent,
    Contact,
    Event,
    OutboxMessage,
    Signup,
    SignupForm,
    Subscription,
    Suppression,
)
from sendwell.signup import service
from sendwell.suppression.service import hash_email, suppress
from tests.helpers import TEST_PEPPER

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def form(session):
    create_topic(session, slug="led-news", name="LED news")
    create_topic(session, slug="fairs", name="Trade fairs")
    form = service.create_form(session, name="Canton Fair", fields=["first_name", "company", "booth"],
                               topics=["led-news", "fairs"], language="de", consent_text="Ja, schickt mir Mails.")
    session.commit()
    return form


def submit(session, form, email="anna@importer.example", **kw):
    values = {"email": email, "first_name": "Anna", "company": "Importer GmbH", "booth": "B12"}
    args = dict(form_id=form.id, values=values, topics=["led-news"], pepper=TEST_PEPPER, ip="203.0.113.5",
                user_agent="Mozilla/5.0 Firefox/130", now=NOW)
    args.update(kw)
    return service.submit_signup(session, **args)


def outbox_rows(session) -> int:
    return session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == service.MAIL_KIND))


def test_a_consent_edit_is_a_new_version_and_a_signup_keeps_the_one_it_saw(session, form):
    first = submit(session, form)
    service.update_form(session, form_id=form.id, consent_text="Ja, schickt mir bitte Mails.")
    service.update_form(session, form_id=form.id, consent_text="Ja, schickt mir bitte Mails.")  # unchanged
    assert service.consent_version(form) == 2
    assert form.consent_texts == ["Ja, schickt mir Mails.", "Ja, schickt mir bitte Mails."]
    assert session.get(Signup, first.signup_id).consent_version == 1
    result = service.confirm_signup(session, signup_id=first.signup_id, pepper=TEST_PEPPER, ip="198.51.100.7",
                                    user_agent="Mozilla/5.0 Safari", now=NOW + timedelta(minutes=3))
    consent = session.scalar(select(Consent).where(Consent.contact_id == result.contact_id))
    assert consent.wording == "Ja, schickt mir Mails."


def test_a_new_form_shows_the_default_consent_in_its_language(session):
    form = service.create_form(session, name="Website", language="zh_Hans")
    assert service.current_consent(form) != service.DEFAULT_CONSENT
    assert "退订" in service.current_consent(form)


def test_a_form_refuses_unknown_topics_languages_and_field_names(session):
    with pytest.raises(service.SignupError):
        service.create_form(session, name="x", topics=["nope"])
    with pytest.raises(service.SignupError):
        service.create_form(session, name="x", language="it")
    with pytest.raises(service.SignupError):
        service.create_form(session, name="x", fields=["Bad Field!"])


def test_signup_queues_one_mail_and_confirm_subscribes_with_proof(session, form):
    result = submit(session, form)
    assert result.outcome == "queued"
    assert outbox_rows(session) == 1
    assert session.scalar(select(func.count()).select_from(Contact)) == 0  # nothing stored before the person confirms
    done = service.confirm_signup(session, signup_id=result.signup_id, pepper=TEST_PEPPER, ip="198.51.100.7",
                                  user_agent="Mozilla/5.0 Safari", now=NOW + timedelta(minutes=3))
    assert done.status == "confirmed" and done.topics == ["led-news"]
    contact = session.get(Contact, done.contact_id)
    assert (contact.email, contact.first_name, contact.company, contact.language) == (
        "anna@importer.example", "Anna", "Importer GmbH", "de")
    assert contact.custom == {"booth": "B12"}
    subs = session.scalars(select(Subscription).where(Subscription.contact_id == contact.id)).all()
    assert [(s.status) for s in subs] == ["subscribed"]
    consent = session.scalar(select(Consent).where(Consent.contact_id == contact.id))
    assert (consent.kind, consent.source, consent.source_kind, consent.ip) == (
        "express", f"signup form {form.id}", "web_form", "198.51.100.7")
    assert consent.obtained_at == NOW + timedelta(minutes=3)
    proof = session.scalar(select(Event).where(Event.kind == "signup_confirmed"))
    assert proof.user_agent == "Mozilla/5.0 Safari"
    assert proof.data["form_id"] == form.id and proof.data["consent_version"] == 1
    assert proof.data["signup_ip"] == "203.0.113.5" and proof.data["signup_user_agent"] == "Mozilla/5.0 Firefox/130"
    assert proof.data["signed_up_at"] == NOW.isoformat()
    assert session.get(Signup, result.signup_id).email == "an***@importer.example"  # the contact holds the address
    again = service.confirm_signup(session, signup_id=result.signup_id, pepper=TEST_PEPPER, now=NOW + timedelta(hours=1))
    assert again.status == "already_confirmed"
    assert session.scalar(select(func.count()).select_from(Consent)) == 1


def test_an_unsubscribed_person_who_confirms_a_signup_is_subscribed_again(session, form):
    email_hash = hash_email(TEST_PEPPER, "anna@importer.example")
    suppress(session, email_hash=email_hash, reason="unsubscribe")
    result = submit(session, form)
    assert result.outcome == "queued"
    done = service.confirm_signup(session, signup_id=result.signup_id, pepper=TEST_PEPPER, now=NOW)
    assert done.status == "confirmed"
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0


@pytest.mark.parametrize("reason", ["hard_bounce", "complaint"])
def test_a_suppressed_address_gets_no_mail(session, form, reason):
    suppress(session, email_hash=hash_email(TEST_PEPPER, "anna@importer.example"), reason=reason)
    assert submit(session, form).outcome == "suppressed"
    assert outbox_rows(session) == 0
    assert session.scalar(select(func.count()).select_from(Signup)) == 0


def test_honeypot_stores_and_sends_nothing(session, form):
    assert submit(session, form, honeypot="http://spam.example").outcome == "honeypot"
    assert outbox_rows(session) == 0 and session.scalar(select(func.count()).select_from(Signup)) == 0


def test_a_second_signup_within_a_day_sends_no_second_mail(session, form):
    assert submit(session, form).outcome == "queued"
    assert submit(session, form, email="ANNA@importer.example", now=NOW + timedelta(hours=23)).outcome == "recent"
    assert outbox_rows(session) == 1
    assert submit(session, form, now=NOW + timedelta(hours=25)).outcome == "queued"
    assert outbox_rows(session) == 2


def test_one_ip_address_is_rate_limited(session, form):
    for n in range(service.IP_LIMIT):
        assert submit(session, form, email=f"b{n}@importer.example").outcome == "queued"
    assert submit(session, form, email="late@importer.example").outcome == "rate_limited"
    assert submit(session, form, email="late@importer.example", ip="192.0.2.1").outcome == "queued"


def test_an_invalid_address_is_refused(session, form):
    with pytest.raises(service.SignupError):
        submit(session, form, email="not an address")


def test_expiry_deletes_unconfirmed_signups_and_counts_them(session, form):
    pending = submit(session, form, expire_days=7)
    confirmed = submit(session, form, email="b@importer.example")
    service.confirm_signup(session, signup_id=confirmed.signup_id, pepper=TEST_PEPPER, now=NOW)
    assert service.expire_signups(session, now=NOW + timedelta(days=6)) == 0
    assert service.expire_signups(session, now=NOW + timedelta(days=7, seconds=1)) == 1
    assert session.get(Signup, pending.signup_id) is None
    assert session.get(Signup, confirmed.signup_id) is not None
    assert service.form_counts(session)[form.id] == {"pending": 0, "confirmed": 1, "expired": 1}
    assert service.confirm_signup(session, signup_id=pending.signup_id, pepper=TEST_PEPPER).status == "expired"
    assert session.get(SignupForm, form.id).expired == 1
