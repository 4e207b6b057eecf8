"""/contacts on every backend: create, read, update, upsert, bulk upsert, list, consents, unsubscribe."""

from __future__ import annotations

from sqlalchemy import func, select

from sendwell.db.models import Contact, Event, Suppression
from sendwell.db.session import transaction
from tests.web.api.conftest import assert_problem

API = "/api/v1"


def test_create_read_update(client, admin) -> None:
    created = client.post(f"{API}/contacts", headers=admin, json={
        "email": "Anna@Licht.EXAMPLE", "first_name": "Anna", "country": "Deutschland", "stage": "prospect",
        "tags": ["canton-fair", "led"], "custom": {"crm_id": "A-17"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["email"] == "Anna@licht.example" and body["country"] == "DE" and body["region"] == "eu"
    assert body["suppressed"] is False and body["source"] == "api"

    got = client.get(f"{API}/contacts/{body['id']}", headers=admin).json()
    assert got == body

    patched = client.patch(f"{API}/contacts/{body['id']}", headers=admin, json={"stage": "customer", "country": "US"})
    assert patched.status_code == 200
    assert patched.json()["stage"] == "customer" and patched.json()["region"] == "us"
    assert patched.json()["first_name"] == "Anna"  # fields not sent are kept

    assert_problem(client.post(f"{API}/contacts", headers=admin, json={"email": "Anna@LICHT.example"}), 409, "email")
    assert_problem(client.patch(f"{API}/contacts/{body['id']}", headers=admin, json={"email": "x@y.example"}), 422, "email")
    assert_problem(client.get(f"{API}/contacts/999999", headers=admin), 404)


def test_validation_errors_name_the_field(client, admin) -> None:
    assert_problem(client.post(f"{API}/contacts", headers=admin, json={"email": "no-at-sign"}), 422, "email")
    assert_problem(client.post(f"{API}/contacts", headers=admin, json={"email": "a@b.example", "country": "Narnia"}),
                   422, "country")
    assert_problem(client.post(f"{API}/contacts", headers=admin, json={"email": "a@b.example", "stage": "vip"}),
                   422, "stage")
    assert_problem(client.post(f"{API}/contacts", headers=admin, json={"first_name": "x"}), 422, "email")
    with transaction(client.app.state.runtime.factory) as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 0


def test_upsert_creates_then_updates(client, admin) -> None:
    first = client.post(f"{API}/contacts/upsert", headers=admin, json={"email": "jean@lumiere.example", "company": "Lumière"})
    assert first.status_code == 201
    second = client.post(f"{API}/contacts/upsert", headers=admin, json={"email": "Jean@LUMIERE.example", "industry": "Lighting"})
    # One person whatever the spelling: every real mailbox provider ignores the local part's case.
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    third = client.post(f"{API}/contacts/upsert", headers=admin, json={"email": "jean@Lumiere.Example", "industry": "Lighting"})
    assert third.status_code == 200
    assert third.json()["id"] == first.json()["id"]
    assert third.json()["company"] == "Lumière" and third.json()["industry"] == "lighting"


def test_bulk_upsert_is_all_or_nothing(client, admin, runtime) -> None:
    client.post(f"{API}/contacts", headers=admin, json={"email": "kept@a.example", "company": "Before"})
    bad = client.post(f"{API}/contacts/bulk-upsert", headers=admin, json=[
        {"email": "kept@a.example", "company": "After"},
        {"email": "new@b.example"},
        {"email": "broken"},
        {"email": "c@c.example", "country": "Atlantis"},
        {"email": "new@b.example"},
    ])
    body = assert_problem(bad, 422)
    fields = [e["field"] for e in body["errors"]]
    assert fields == ["items[2].email", "items[3].country", "items[4].email"]
    with transaction(runtime.factory) as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 1
        assert s.scalar(select(Contact.company)) == "Before"

    ok = client.post(f"{API}/contacts/bulk-upsert", headers=admin, json=[
        {"email": "kept@a.example", "company": "After"}, {"email": "new@b.example", "country": "FR"}])
    assert ok.status_code == 200, ok.text
    assert ok.json()["created"] == 1 and ok.json()["updated"] == 1
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Contact.company).where(Contact.email == "kept@a.example")) == "After"


def test_bulk_upsert_names_a_schema_error_by_item(client, admin) -> None:
    body = assert_problem(client.post(f"{API}/contacts/bulk-upsert", headers=admin,
                                      json=[{"email": "a@b.example"}, {"email": "c@d.example", "tags": "x"}]), 422)
    assert body["errors"][0]["field"] == "items[1].tags"


def test_list_pages_and_filters_by_segment(client, admin) -> None:
    for i, country in enumerate(["DE", "FR", "US", "DE", "CN"]):
        client.post(f"{API}/contacts", headers=admin, json={"email": f"c{i}@x{i}.example", "country": country})
    page1 = client.get(f"{API}/contacts?limit=2", headers=admin).json()
    assert [c["email"] for c in page1["items"]] == ["c0@x0.example", "c1@x1.example"]
    page2 = client.get(f"{API}/contacts?limit=2&after={page1['next_after']}", headers=admin).json()
    page3 = client.get(f"{API}/contacts?limit=2&after={page2['next_after']}", headers=admin).json()
    assert [c["email"] for c in page2["items"] + page3["items"]] == ["c2@x2.example", "c3@x3.example", "c4@x4.example"]
    assert page3["next_after"] is None

    eu = client.get(f"{API}/contacts", params={"segment": "region = eu"}, headers=admin).json()
    assert sorted(c["country"] for c in eu["items"]) == ["DE", "DE", "FR"]
    assert_problem(client.get(f"{API}/contacts", params={"segment": "colour = red"}, headers=admin), 422, "query.segment")
    assert_problem(client.get(f"{API}/contacts?limit=501", headers=admin), 422, "query.limit")


def test_consents(client, admin) -> None:
    cid = client.post(f"{API}/contacts", headers=admin, json={"email": "a@b.example"}).json()["id"]
    added = client.post(f"{API}/contacts/{cid}/consents", headers=admin, json={
        "kind": "implied_inquiry", "source": "https://b.example/contact-form", "obtained_at": "2026-01-10T08:00:00Z",
        "ip": "203.0.113.9", "wording": "Send me offers"})
    assert added.status_code == 201, added.text
    # CASL s10(10): an inquiry implies consent for 6 months.
    assert added.json()["expires_at"].startswith("2026-07-1")
    listed = client.get(f"{API}/contacts/{cid}/consents", headers=admin).json()
    assert [c["kind"] for c in listed] == ["implied_inquiry"]
    assert_problem(client.post(f"{API}/contacts/{cid}/consents", headers=admin, json={"kind": "maybe", "source": "x"}), 422, "kind")
    assert_problem(client.post(f"{API}/contacts/{cid}/consents", headers=admin,
                               json={"kind": "express", "source": "x", "obtained_at": "2026-01-10T08:00:00"}), 422, "obtained_at")
    assert_problem(client.get(f"{API}/contacts/424242/consents", headers=admin), 404)


def test_unsubscribe_via_api_suppresses_once(client, admin, runtime) -> None:
    cid = client.post(f"{API}/contacts", headers=admin, json={"email": "leave@me.example"}).json()["id"]
    client.post(f"{API}/contacts/{cid}/consents", headers=admin, json={"kind": "express", "source": "form"})
    first = client.post(f"{API}/contacts/{cid}/unsubscribe", headers=admin)
    assert first.status_code == 200 and first.json()["already_unsubscribed"] is False
    again = client.post(f"{API}/contacts/{cid}/unsubscribe", headers=admin)
    assert again.json()["already_unsubscribed"] is True
    assert again.json()["unsubscribed_at"] == first.json()["unsubscribed_at"]
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Suppression.reason)) == "unsubscribe"
        events = s.execute(select(Event.kind, Event.method).where(Event.kind == "unsubscribed")).all()
        assert events == [("unsubscribed", "api")]
    assert client.get(f"{API}/contacts/{cid}", headers=admin).json()["suppressed"] is True
    assert client.get(f"{API}/contacts/{cid}/consents", headers=admin).json()[0]["withdrawn_at"] is not None
    # Upserting the address again never lifts the suppression (COMPLIANCE rule 18).
    client.post(f"{API}/contacts/upsert", headers=admin, json={"email": "leave@me.example", "company": "New"})
    assert client.get(f"{API}/contacts/{cid}", headers=admin).json()["suppressed"] is True
    assert_problem(client.post(f"{API}/contacts/987654/unsubscribe", headers=admin), 404)


def test_bulk_upsert_is_bounded(client, admin) -> None:
    items = [{"email": f"c{i}@bulk.example"} for i in range(1001)]
    assert_problem(client.post(f"{API}/contacts/bulk-upsert", headers=admin, json=items), 422)
    assert client.post(f"{API}/contacts/bulk-upsert", headers=admin, json=items[:1000]).json()["created"] == 1000
