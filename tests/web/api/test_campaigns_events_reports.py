"""/campaigns (create, send = plan + queue, pause, resume, cancel, sends), /events and /reports."""

from __future__ import annotations

from sqlalchemy import select

from sendwell.db.models import Contact
from sendwell.db.session import transaction
from sendwell.worker.queue import Queue
from tests.web.api.conftest import assert_problem

API = "/api/v1"
HTML = "<p>Hello {{ contact.first_name }}, our new LED panels are CE marked.</p>"


def _audience(client, admin) -> list[int]:
    ids = []
    for i, country in enumerate(["DE", "FR", "US"]):
        cid = client.post(f"{API}/contacts", headers=admin, json={"email": f"b{i}@x.example", "country": country}).json()["id"]
        client.post(f"{API}/contacts/{cid}/consents", headers=admin, json={"kind": "express", "source": "form"})
        ids.append(cid)
    return ids


def test_create_send_and_follow_a_campaign(client, admin, runtime) -> None:
    ids = _audience(client, admin)
    client.post(f"{API}/contacts/{ids[1]}/unsubscribe", headers=admin)
    created = client.post(f"{API}/campaigns", headers=admin, json={
        "name": "Spring range", "subject": "New LED panels", "html": HTML, "segment": "region = eu"})
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["status"] == "draft" and campaign["segment"] == "region = eu"

    sent = client.post(f"{API}/campaigns/{campaign['id']}/send", headers=admin)
    assert sent.status_code == 200, sent.text
    status = sent.json()
    assert status["status"] == "sending" and status["total"] == 2
    assert status["states"]["queued"] == 1 and status["skipped"] == {"unsubscribed": 1}
    assert status["queued_jobs"] == 1
    assert Queue(runtime).pending() == 1  # handed to the same queue the CLI uses

    queued = client.get(f"{API}/campaigns/{campaign['id']}/sends", params={"state": "queued"}, headers=admin).json()
    assert [s["contact_id"] for s in queued["items"]] == [ids[0]]
    skipped = client.get(f"{API}/campaigns/{campaign['id']}/sends?state=skipped", headers=admin).json()
    assert [(s["contact_id"], s["skip_reason"]) for s in skipped["items"]] == [(ids[1], "unsubscribed")]
    assert_problem(client.get(f"{API}/campaigns/{campaign['id']}/sends?state=lost", headers=admin), 422, "query.state")

    assert client.post(f"{API}/campaigns/{campaign['id']}/pause", headers=admin).json()["status"] == "paused"
    assert_problem(client.post(f"{API}/campaigns/{campaign['id']}/pause", headers=admin), 409)
    assert_problem(client.post(f"{API}/campaigns/{campaign['id']}/send", headers=admin), 409)
    assert client.post(f"{API}/campaigns/{campaign['id']}/resume", headers=admin).json()["status"] == "sending"
    cancelled = client.post(f"{API}/campaigns/{campaign['id']}/cancel", headers=admin).json()
    assert cancelled["status"] == "cancelled" and cancelled["skipped"]["cancelled"] == 1
    assert_problem(client.post(f"{API}/campaigns/{campaign['id']}/send", headers=admin), 409)
    assert client.get(f"{API}/campaigns/{campaign['id']}", headers=admin).json()["status"] == "cancelled"
    listed = client.get(f"{API}/campaigns", headers=admin).json()
    assert [c["name"] for c in listed["items"]] == ["Spring range"]


def test_campaign_validation_and_scopes(client, admin, auth) -> None:
    assert_problem(client.post(f"{API}/campaigns", headers=admin, json={
        "name": "x", "subject": "y", "html": HTML, "segment": "region = mars"}), 422, "segment")
    assert_problem(client.post(f"{API}/campaigns", headers=admin, json={
        "name": "x", "subject": "y", "html": "{% if %}"}), 422, "html")
    assert_problem(client.post(f"{API}/campaigns", headers=admin, json={"name": "x", "html": HTML}), 422, "subject")
    assert_problem(client.post(f"{API}/campaigns/31337/send", headers=admin), 404)
    assert_problem(client.get(f"{API}/campaigns/31337/sends", headers=admin), 404)
    reader = auth("campaigns:read")
    assert client.get(f"{API}/campaigns", headers=reader).status_code == 200
    assert_problem(client.post(f"{API}/campaigns", headers=reader, json={"name": "x", "subject": "y", "html": HTML}), 403)


def test_engagement_events_set_last_engaged_at(client, admin, auth, runtime) -> None:
    ids = _audience(client, admin)
    website = auth("events:write")
    posted = client.post(f"{API}/events", headers=website, json={
        "kind": "engaged", "email": "b0@x.example", "source": "website", "data": {"page": "/led-panels"}})
    assert posted.status_code == 201, posted.text
    assert posted.json()["kind"] == "engaged" and posted.json()["contact_id"] == ids[0]
    replied = client.post(f"{API}/events", headers=website, json={
        "kind": "replied", "contact_id": ids[1], "occurred_at": "2026-03-01T10:00:00+08:00"})
    assert replied.status_code == 201
    with transaction(runtime.factory) as s:
        engaged = dict(s.execute(select(Contact.id, Contact.last_engaged_at)).all())
    assert engaged[ids[0]] is not None and engaged[ids[2]] is None
    assert engaged[ids[1]].isoformat() == "2026-03-01T02:00:00+00:00"

    # Never an opt-out through this route: those go through /contacts/{id}/unsubscribe.
    for kind in ("unsubscribed", "complained", "bounced", "suppressed"):
        assert_problem(client.post(f"{API}/events", headers=website, json={"kind": kind, "contact_id": ids[2]}), 422, "kind")
    assert_problem(client.post(f"{API}/events", headers=website, json={"kind": "engaged"}), 422)
    assert_problem(client.post(f"{API}/events", headers=website, json={"kind": "engaged", "email": "who@x.example"}), 404)
    assert_problem(client.get(f"{API}/events", headers=website), 403)

    events = client.get(f"{API}/events", params={"kind": "engaged"}, headers=admin).json()
    assert [(e["contact_id"], e["method"]) for e in events["items"]] == [(ids[0], "website")]
    by_contact = client.get(f"{API}/events", params={"contact_id": ids[1], "limit": 1}, headers=admin).json()
    assert [e["kind"] for e in by_contact["items"]] == ["replied"] and by_contact["next_after"] is not None


def test_report(client, admin, auth) -> None:
    _audience(client, admin)
    cid = client.post(f"{API}/campaigns", headers=admin, json={"name": "R", "subject": "S", "html": HTML}).json()["id"]
    report = client.get(f"{API}/reports", headers=auth("reports:read"))
    assert report.status_code == 200
    assert set(report.json()["by"]) == {"region", "stage", "industry", "country", "language"}
    assert client.get(f"{API}/reports", params={"campaign_id": cid}, headers=admin).json()["campaign_id"] == cid
    assert_problem(client.get(f"{API}/reports?campaign_id=999", headers=admin), 404)
    assert_problem(client.get(f"{API}/reports", headers=auth("contacts:read")), 403)


def test_send_refuses_a_campaign_that_fails_the_compliance_lint(client, admin) -> None:
    """The send gate: no entry point sends a campaign with blocking findings; nothing is planned."""
    _audience(client, admin)
    created = client.post(f"{API}/campaigns", headers=admin, json={
        "name": "Careless", "subject": "RE: our call",
        "html": '<p>Hi</p><style>.sendwell-footer{display:none}</style>'})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    body = assert_problem(client.post(f"{API}/campaigns/{cid}/send", headers=admin), 422)
    codes = {e["field"] for e in body["errors"]}
    assert "deceptive-subject" in codes
    status = client.get(f"{API}/campaigns/{cid}", headers=admin).json()
    assert status["status"] == "draft" and status["total"] == 0
