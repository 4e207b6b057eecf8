"""One contact per address whatever its letter case: import, API upsert, erasure, the database key."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from sendwell.access.service import create_token
from sendwell.contacts.importer import import_contacts
from sendwell.contacts.records import (
    BulkContactError,
    ContactExists,
    create_contact,
    upsert_contact,
    upsert_contacts,
)
from sendwell.db.models import Contact
from sendwell.db.session import transaction
from sendwell.suppression.service import hash_email
from sendwell.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PEPPER = b"test-pepper-0123456789"


def _count(session) -> int:
    return session.scalar(select(func.count()).select_from(Contact))


def _csv(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("email,first_name,company\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_matches_an_address_whatever_its_case(session, tmp_path) -> None:
    import_contacts(session, path=_csv(tmp_path, "a.csv", "Anna@Licht.example,Anna,"), pepper=PEPPER)
    result = import_contacts(session, path=_csv(tmp_path, "b.csv", "anna@licht.example,,Licht GmbH"), pepper=PEPPER)
    assert (result.created, result.updated) == (0, 1)
    contact = session.scalars(select(Contact)).one()
    # The local part stays as first given (the domain is lower-cased); the new value is merged in.
    assert (contact.email, contact.first_name, contact.company) == ("Anna@licht.example", "Anna", "Licht GmbH")


def test_one_file_with_both_spellings_makes_one_contact(session, tmp_path) -> None:
    path = _csv(tmp_path, "c.csv", "Bob@Acme.example,Bob,", "BOB@acme.example,,Acme Inc.")
    result = import_contacts(session, path=path, pepper=PEPPER)
    assert (result.created, result.duplicates) == (1, 1)
    assert _count(session) == 1


def test_api_use_cases_match_an_address_whatever_its_case(session) -> None:
    first, created = upsert_contact(session, pepper=PEPPER, email="Cleo@Lamp.example", fields={"company": "Lamp"})
    again, created_again = upsert_contact(session, pepper=PEPPER, email="cleo@lamp.example", fields={"job_title": "Buyer"})
    assert created and not created_again and again.id == first.id
    assert (again.email, again.company, again.job_title) == ("Cleo@lamp.example", "Lamp", "Buyer")
    with pytest.raises(ContactExists):
        create_contact(session, pepper=PEPPER, email="CLEO@LAMP.EXAMPLE", fields={})
    results = upsert_contacts(session, pepper=PEPPER, items=[{"email": "cleo@LAMP.example", "first_name": "Cleo"}])
    assert [(c.id, created) for c, created in results] == [(first.id, False)]
    with pytest.raises(BulkContactError) as caught:
        upsert_contacts(session, pepper=PEPPER, items=[{"email": "dan@x.example"}, {"email": "Dan@X.example"}])
    assert caught.value.errors[0].field == "items[1].email"
    assert _count(session) == 1


def test_the_database_refuses_a_second_spelling(session) -> None:
    """The unique key is the peppered hash of the lower-cased address, on every backend."""
    session.add(Contact(email="Eve@Y.example", email_hash=hash_email(PEPPER, "Eve@Y.example")))
    session.flush()
    session.add(Contact(email="eve@y.example", email_hash=hash_email(PEPPER, "eve@y.example")))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_api_upsert_after_erasure_of_another_spelling(runtime) -> None:
    """Erasing ANNA@… keeps anna@… and Anna@… suppressed, and they are one contact."""
    with transaction(runtime.factory) as session:
        secret = create_token(session, name="test", scopes=["contacts:write", "contacts:erase"]).secret
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(runtime, outbox=False)) as client:
        erased = client.post("/api/v1/contacts/erase", json={"email": "ANNA@Licht.example"}, headers=headers)
        assert erased.status_code == 200, erased.text
        answers = [client.post("/api/v1/contacts/upsert", json={"email": email}, headers=headers)
                   for email in ("anna@licht.example", "Anna@Licht.example", "ANNA@LICHT.EXAMPLE")]
        bulk = client.post("/api/v1/contacts/bulk-upsert", json=[{"email": "aNNa@licht.example"}], headers=headers)
    assert [a.status_code for a in answers] == [201, 200, 200], [a.text for a in answers]
    assert all(a.json()["suppressed"] for a in answers)
    assert len({a.json()["id"] for a in answers}) == 1
    assert bulk.status_code == 200 and bulk.json()["items"][0]["id"] == answers[0].json()["id"]
    with transaction(runtime.factory) as session:
        assert _count(session) == 1
