"""Contacts changed in the admin: add, edit that never resubscribes, topic opt-out, erase, bulk, export, history."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from sendwell.contacts import manage
from sendwell.contacts.history import list_imports, record_import, rejected_rows
from sendwell.contacts.importer import import_contacts
from sendwell.contacts.records import ContactError
from sendwell.db.models import Consent, Contact, Event, Subscription, Suppression, Topic
from sendwell.optout.service import unsubscribe_contact
from tests.helpers import TEST_PEPPER, make_contact

ADMIN = "ops@bright-lighting.example"


def topic(session, slug: str = "led-panels") -> Topic:  # type: ignore[no-untyped-def]
    row = Topic(slug=slug, name=slug.replace("-", " ").title())
    session.add(row)
    session.flush()
    return row


def subscribed(session, contact_id: int, topic_id: int) -> bool:  # type: ignore[no-untyped-def]
    return session.scalar(select(Subscription.status).where(
        Subscription.contact_id == contact_id, Subscription.topic_id == topic_id)) == "subscribed"


def test_a_contact_added_by_hand_records_source_admin_its_consent_and_who(session) -> None:
    led = topic(session)
    contact = manage.add_contact(session, pepper=TEST_PEPPER, email="Anna@Licht.example", by=ADMIN,
                                 fields={"first_name": "Anna", "country": "Germany", "stage": "customer",
                                         "tags": ["fair"]},
                                 consent="express", consent_source="trade_fair", wording="Ticked the box",
                                 topics=[led.id])
    assert (contact.source, contact.country, contact.region, contact.stage) == ("admin", "DE", "eu", "customer")
    consent = session.scalar(select(Consent).where(Consent.contact_id == contact.id))
    assert (consent.kind, consent.source, consent.source_kind, consent.wording) == (
        "express", f"admin:{ADMIN}", "trade_fair", "Ticked the box")
    assert subscribed(session, contact.id, led.id)
    event = session.scalar(select(Event).where(Event.kind == "contact_added"))
    assert (event.contact_id, event.method, event.data["admin"]) == (contact.id, "admin", ADMIN)
    with pytest.raises(ContactError, match="already exists"):
        manage.add_contact(session, pepper=TEST_PEPPER, email="anna@licht.example", by=ADMIN, fields={})


def test_without_consent_a_topic_box_does_not_subscribe(session) -> None:
    led = topic(session)
    contact = manage.add_contact(session, pepper=TEST_PEPPER, email="li@shenzhen.example", by=ADMIN, fields={},
                                 topics=[led.id])
    assert not subscribed(session, contact.id, led.id)
    assert [b.lock for b in manage.topic_boxes(session, contact_id=contact.id)] == [manage.LOCK_NO_CONSENT]


def test_an_edit_never_resubscribes_an_unsubscribed_or_suppressed_contact(session) -> None:
    led, solar = topic(session), topic(session, "solar")
    leaver = make_contact(session, email="leaver@buyer.example")
    session.add(Subscription(contact_id=leaver.id, topic_id=led.id))
    session.flush()
    unsubscribe_contact(session, contact_id=leaver.id, method="one_click")
    result = manage.edit_contact(session, contact_id=leaver.id, by=ADMIN, fields={"stage": "customer"},
                                 topics=[led.id, solar.id])
    assert sorted(result.refused_topics) == ["led-panels", "solar"]
    assert not subscribed(session, leaver.id, led.id) and not subscribed(session, leaver.id, solar.id)
    assert {b.lock for b in manage.topic_boxes(session, contact_id=leaver.id)} == {manage.LOCK_SUPPRESSED}
    assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    assert leaver.stage == "customer"  # the fields still change
    # A person who left one topic stays out of it; another topic can be ticked.
    stayer = make_contact(session, email="stayer@buyer.example")
    manage.unsubscribe_from_topic(session, contact_id=stayer.id, topic_id=led.id, by=ADMIN, reason="asked by phone")
    result = manage.edit_contact(session, contact_id=stayer.id, by=ADMIN, fields={}, topics=[led.id, solar.id])
    assert result.refused_topics == ["led-panels"] and result.changed["topics_added"] == ["solar"]
    assert not subscribed(session, stayer.id, led.id) and subscribed(session, stayer.id, solar.id)
    audit = session.scalar(select(Event).where(Event.kind == "preferences_changed", Event.contact_id == stayer.id))
    assert (audit.method, audit.data["admin"], audit.data["reason"]) == ("admin", ADMIN, "asked by phone")


def test_an_edit_changes_fields_and_tags_and_is_audited(session) -> None:
    contact = make_contact(session, country="DE", tags=["old"])
    result = manage.edit_contact(session, contact_id=contact.id, by=ADMIN,
                                 fields={"company": "Licht AG", "country": "CN", "tags": ["vip", "fair"]})
    assert (contact.company, contact.region, contact.tags) == ("Licht AG", "cn", ["fair", "vip"])
    assert set(result.changed) == {"company", "country", "tags"}
    event = session.scalar(select(Event).where(Event.kind == "contact_edited"))
    assert event.data["changes"]["company"][1] == "Licht AG" and event.data["admin"] == ADMIN
    with pytest.raises(ContactError):
        manage.edit_contact(session, contact_id=contact.id, by=ADMIN, fields={"stage": "no-such-stage"})
    assert manage.edit_contact(session, contact_id=999999, by=ADMIN, fields={}) is None


def test_erasure_on_request_is_audited_without_the_address(session) -> None:
    contact = make_contact(session, email="gone@buyer.example")
    result = manage.erase_on_request(session, contact_id=contact.id, pepper=TEST_PEPPER, by=ADMIN,
                                     reason="Art 17 request by mail")
    assert result is not None and result.found
    assert session.scalar(select(func.count()).select_from(Contact)) == 0
    event = session.scalar(select(Event).where(Event.kind == "contact_erased"))
    assert event.data == {"admin": ADMIN, "reason": "Art 17 request by mail", "email_hash": result.email_hash}
    assert "gone@" not in str(event.data)


def test_bulk_changes_follow_the_edit_rules_and_are_audited(session) -> None:
    led = topic(session)
    fine = [make_contact(session) for _ in range(3)]
    no_consent = make_contact(session, consent=None)
    leaver = make_contact(session)
    unsubscribe_contact(session, contact_id=leaver.id, method="page")
    ids = manage.chosen_ids(session, where=Contact.industry == "lighting")
    assert len(ids) == 5
    assert manage.bulk_change(session, ids=ids, action="add_tag", value="fair-2026", by=ADMIN).changed == 5
    assert manage.bulk_change(session, ids=ids, action="set_stage", value="Customer", by=ADMIN).changed == 5
    result = manage.bulk_change(session, ids=ids, action="subscribe", value="led-panels", by=ADMIN)
    assert (result.matched, result.changed, result.skipped) == (5, 3, 2)
    assert not subscribed(session, no_consent.id, led.id) and not subscribed(session, leaver.id, led.id)
    assert all(subscribed(session, c.id, led.id) for c in fine)
    assert manage.bulk_change(session, ids=ids, action="unsubscribe", value="led-panels", by=ADMIN).changed == 3
    session.expire_all()
    assert {tuple(c.tags) for c in session.scalars(select(Contact))} == {("fair-2026",)}
    assert {c.stage for c in session.scalars(select(Contact))} == {"customer"}
    deleted = manage.bulk_change(session, ids=[fine[0].id, fine[1].id], action="delete", value="", by=ADMIN)
    assert deleted.changed == 2 and session.scalar(select(func.count()).select_from(Contact)) == 3
    audits = list(session.scalars(select(Event).where(Event.kind == "contacts_bulk_changed").order_by(Event.id)))
    assert [a.data["action"] for a in audits] == ["add_tag", "set_stage", "subscribe", "unsubscribe", "delete"]
    assert audits[0].data["admin"] == ADMIN and audits[0].data["matched"] == 5
    with pytest.raises(ContactError):
        manage.bulk_change(session, ids=ids, action="subscribe", value="no-such-topic", by=ADMIN)


def test_export_rows_guard_formulas_and_leave_opt_outs_out(session) -> None:
    make_contact(session, email="formula@buyer.example", company="=HYPERLINK(\"http://evil\")", first_name="+1",
                 tags=["@x", "b"])
    leaver = make_contact(session, email="leaver@buyer.example")
    make_contact(session, email="other@buyer.example", industry="solar")
    unsubscribe_contact(session, contact_id=leaver.id, method="page")
    rows = list(manage.export_rows(session, where=Contact.industry == "lighting"))
    assert rows[0][0] == "email" and len(rows) == 2
    row = dict(zip(rows[0], rows[1]))
    assert (row["email"], row["company"], row["first_name"], row["tags"]) == (
        "formula@buyer.example", "'=HYPERLINK(\"http://evil\")", "'+1", "'@x;b")


def test_an_import_run_is_stored_with_its_rejected_rows(session, tmp_path: Path) -> None:
    path = tmp_path / "buyers.csv"
    path.write_text("email,country\nanna@licht.example,DE\nbad,DE\nli@shenzhen.example,Atlantis\n", encoding="utf-8")
    result = import_contacts(session, path=path, pepper=TEST_PEPPER, skip_invalid=True, rejected_path=False)
    batch = record_import(session, filename="buyers.csv", imported_by=ADMIN, result=result, source="Fair")
    assert (batch.rows, batch.created, batch.rejected, batch.written) == (3, 1, 2, True)
    assert list_imports(session)[0].id == batch.id
    rows = [(r.row, r.field, r.template % r.params) for r in rejected_rows(session, batch_id=batch.id)]
    assert rows[0][:2] == (3, "email") and rows[1] == (
        4, "country", "unknown country 'Atlantis' (use an ISO code such as DE or a name)")
