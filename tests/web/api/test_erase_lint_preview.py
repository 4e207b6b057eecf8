"""DELETE /contacts/{id} and POST /contacts/erase (GDPR Art 17), POST /campaigns/{id}/lint, GET /campaigns/{id}/preview."""

from __future__ import annotations

from sqlalchemy import select

from sendwell.db.models import Consent, Event, Suppression
from sendwell.db.session import transaction
from tests.web.api.conftest import assert_problem

API = "/api/v1"
HTML = "<p>Hello {{ contact.first_name }}, our new LED panels are CE marked.</p>"


def _contact(client, admin, email: str = "anna@licht.example", country: str = "DE") -> int:
    created = client.post(f"{API}/contacts", headers=admin, json={"email": email, "first_name": "Anna", "country": country})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    client.post(f"{API}/contacts/{cid}/consents", headers=admin, json={"kind": "express", "source": "form", "ip": "203.0.113.9"})
    return cid


def test_erase_deletes_the_contact_and_keeps_the_address_unmailable(client, admin, runtime) -> None:
    cid = _contact(client, admin)
    client.post(f"{API}/events", headers=admin, json={"kind": "engaged", "contact_id": cid, "data": {"text": "call me"}})
    erased = client.delete(f"{API}/contacts/{cid}", headers=admin)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["erased"] is True and body["suppression_reason"] == "erased" and body["events_scrubbed"] >= 1
    assert_problem(client.get(f"{API}/contacts/{cid}", headers=admin), 404)
    assert_problem(client.delete(f"{API}/contacts/{cid}", headers=admin), 404)  # gone: nothing left to erase
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Suppression.email_hash).where(Suppression.reason == "erased")) == body["email_hash"]
        assert not s.scalars(select(Consent)).all()
        assert all(e.contact_id is None and "text" not in (e.data or {}) for e in s.scalars(select(Event)))
        assert "anna@licht.example" not in str([e.data for e in s.scalars(select(Event))])
    check = client.post(f"{API}/suppressions/check", headers=admin, json={"email": "Anna@Licht.example"}).json()
    assert check["suppressed"] is True
    # Imported again later (a CRM sync): stored, but never mailed (COMPLIANCE rule 18).
    again = client.post(f"{API}/contacts/upsert", headers=admin, json={"email": "anna@licht.example"}).json()
    assert again["suppressed"] is True


def test_erase_keeps_an_earlier_unsubscribe_as_the_reason(client, admin) -> None:
    cid = _contact(client, admin)
    client.post(f"{API}/contacts/{cid}/unsubscribe", headers=admin)
    assert client.delete(f"{API}/contacts/{cid}", headers=admin).json()["suppression_reason"] == "unsubscribe"


def test_erase_by_address_works_for_a_person_never_stored(client, admin) -> None:
    erased = client.post(f"{API}/contacts/erase", headers=admin, json={"email": "stranger@shop.example"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"] is False
    assert client.post(f"{API}/suppressions/check", headers=admin, json={"email": "stranger@shop.example"}).json()["suppressed"]
    cid = _contact(client, admin, email="li@shop.example")
    assert client.post(f"{API}/contacts/erase", headers=admin, json={"email": "LI@shop.example"}).json()["erased"] is True
    assert_problem(client.get(f"{API}/contacts/{cid}", headers=admin), 404)
    assert_problem(client.post(f"{API}/contacts/erase", headers=admin, json={"email": "not an address"}), 422, "email")
    assert_problem(client.post(f"{API}/contacts/erase", headers=admin, json={}), 422, "email")


def test_erase_needs_its_own_scope(client, admin, auth) -> None:
    cid = _contact(client, admin)
    writer = auth("contacts:read", "contacts:write")
    assert_problem(client.delete(f"{API}/contacts/{cid}", headers=writer), 403)
    assert_problem(client.post(f"{API}/contacts/erase", headers=writer, json={"email": "anna@licht.example"}), 403)
    assert client.get(f"{API}/contacts/{cid}", headers=admin).status_code == 200  # nothing happened
    assert client.delete(f"{API}/contacts/{cid}", headers=auth("contacts:erase")).status_code == 200
    assert_problem(client.delete(f"{API}/contacts/{cid}"), 401)
    assert_problem(client.delete(f"{API}/contacts/0", headers=admin), 422, "path.contact_id")


def _campaign(client, admin, **fields) -> int:
    body = {"name": "Spring range", "subject": "New LED panels", "html": HTML, "segment": "region = eu", **fields}
    created = client.post(f"{API}/campaigns", headers=admin, json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_lint_reports_rule_ids_and_the_blocking_flag(client, admin, auth) -> None:
    _contact(client, admin)
    clean = client.post(f"{API}/campaigns/{_campaign(client, admin)}/lint", headers=admin)
    assert clean.status_code == 200, clean.text
    report = clean.json()
    assert report["ok"] is True and report["errors"] == 0 and report["samples"] == ["eu/en"]
    assert all(not f["blocking"] for f in report["findings"])

    careless = _campaign(client, admin, name="Careless", subject="RE: our call",
                         html='<p>Hi</p><style>.sendwell-footer{display:none}</style>')
    reader = auth("campaigns:read")
    report = client.post(f"{API}/campaigns/{careless}/lint", headers=reader).json()
    assert report["ok"] is False and report["errors"] >= 1
    by_code = {f["code"]: f for f in report["findings"]}
    assert by_code["deceptive-subject"]["blocking"] is True and by_code["deceptive-subject"]["rule"] == 16
    assert by_code["deceptive-subject"]["severity"] == "error"
    # The same findings as the send gate, which refuses it.
    sent = assert_problem(client.post(f"{API}/campaigns/{careless}/send", headers=admin), 422)
    assert {e["field"] for e in sent["errors"]} == {f["code"] for f in report["findings"] if f["blocking"]}
    assert client.get(f"{API}/campaigns/{careless}", headers=admin).json()["status"] == "draft"
    assert_problem(client.post(f"{API}/campaigns/999999/lint", headers=admin), 404)
    assert_problem(client.post(f"{API}/campaigns/{careless}/lint", headers=auth("contacts:read")), 403)


def test_preview_renders_the_real_footer_per_region_and_language(client, admin, auth, runtime) -> None:
    de = _contact(client, admin, email="anna@licht.example", country="DE")
    _contact(client, admin, email="joe@bulbs.example", country="US")
    campaign = _campaign(client, admin, segment="")
    reader = auth("campaigns:read")
    previews = client.get(f"{API}/campaigns/{campaign}/preview", headers=reader)
    assert previews.status_code == 200, previews.text
    items = previews.json()["previews"]
    assert sorted(p["label"] for p in items) == ["eu/en", "us/en"]
    for p in items:
        assert p["subject"] == "New LED panels"
        for body in (p["html"], p["text"]):
            assert runtime.settings.postal_address in body and runtime.settings.company_name in body
            assert "/u/preview-" in body  # a visible unsubscribe link, never a real token
        assert p["size"] > 0 and p["contact"]["synthetic"] is False
    us = client.get(f"{API}/campaigns/{campaign}/preview", params={"region": "us"}, headers=reader).json()["previews"]
    assert [p["contact"]["email"] for p in us] == ["joe@bulbs.example"]
    eu = client.get(f"{API}/campaigns/{campaign}/preview", params={"region": "eu"}, headers=reader).json()["previews"]
    assert [p["contact"]["email"] for p in eu] == ["anna@licht.example"]
    # Each region's own footer: the GDPR data notice for the EU contact, not for the US one.
    assert "Data protection:" in eu[0]["text"] and "Data protection:" not in us[0]["text"]

    # Nobody in the audience is Canadian and French-speaking: a synthetic stand-in shows that footer.
    ca = client.get(f"{API}/campaigns/{campaign}/preview", params={"region": "ca", "language": "fr"}, headers=reader).json()
    assert [(p["label"], p["contact"]["synthetic"]) for p in ca["previews"]] == [("ca/fr", True)]
    assert "60" in ca["previews"][0]["text"]  # CASL: the link works for at least 60 days (in French)

    # One person's preview shows their data: it needs contacts:read as well.
    both = auth("campaigns:read", "contacts:read")
    one = client.get(f"{API}/campaigns/{campaign}/preview", params={"contact_id": de}, headers=both).json()["previews"]
    assert [p["contact"]["id"] for p in one] == [de]
    assert "Anna" in one[0]["html"]

    assert_problem(client.get(f"{API}/campaigns/{campaign}/preview", params={"region": "mars"}, headers=reader), 422, "query.region")
    assert_problem(client.get(f"{API}/campaigns/{campaign}/preview", params={"language": "xx"}, headers=reader), 422, "query.language")
    assert_problem(client.get(f"{API}/campaigns/{campaign}/preview", params={"contact_id": 999999}, headers=both), 404)
    assert_problem(client.get(f"{API}/campaigns/{campaign}/preview", params={"contact_id": de}, headers=reader), 403)
    assert_problem(client.get(f"{API}/campaigns/999999/preview", headers=reader), 404)
    assert_problem(client.get(f"{API}/campaigns/{campaign}/preview", headers=auth("contacts:read")), 403)
    # A preview changes nothing: no sends planned, still a draft.
    status = client.get(f"{API}/campaigns/{campaign}", headers=admin).json()
    assert status["status"] == "draft" and status["total"] == 0
