"""POST /campaigns/{id}/send?dry_run=true: the plan, documented, with nothing changed."""

from __future__ import annotations

from sendwell.db.models import Send
from sendwell.db.session import transaction
from tests.web.api.test_campaigns_events_reports import API, HTML, _audience


def test_dry_run_answers_the_plan_and_changes_nothing(client, admin, runtime) -> None:
    ids = _audience(client, admin)  # DE, FR, US
    client.post(f"{API}/contacts/{ids[1]}/unsubscribe", headers=admin)
    campaign_id = client.post(f"{API}/campaigns", headers=admin, json={
        "name": "Spring range", "subject": "New LED panels", "html": HTML}).json()["id"]

    dry = client.post(f"{API}/campaigns/{campaign_id}/send?dry_run=true", headers=admin)
    assert dry.status_code == 200, dry.text
    plan = dry.json()
    assert (plan["campaign_id"], plan["contacts"], plan["recipients"], plan["now"]) == (campaign_id, 3, 2, 2)
    assert plan["skipped"] == {"unsubscribed": 1} and plan["by_region"] == {"eu": 1, "us": 1}
    assert plan["blocked"] is False and isinstance(plan["findings"], list)
    status = client.get(f"{API}/campaigns/{campaign_id}", headers=admin).json()
    assert status["status"] == "draft"
    with transaction(runtime.factory) as s:
        assert s.query(Send).count() == 0

    sent = client.post(f"{API}/campaigns/{campaign_id}/send", headers=admin).json()
    assert sent["states"]["queued"] == plan["now"] and sent["skipped"] == plan["skipped"]


def test_dry_run_is_in_the_openapi_document(client) -> None:
    operation = client.get(f"{API}/openapi.json").json()["paths"]["/campaigns/{campaign_id}/send"]["post"]
    assert any(p["name"] == "dry_run" and p["in"] == "query" for p in operation["parameters"])
    assert "dry_run=true" in operation["responses"]["200"]["description"]


def test_dry_run_of_a_finished_campaign_is_a_conflict(client, admin) -> None:
    campaign_id = client.post(f"{API}/campaigns", headers=admin, json={
        "name": "Nobody", "subject": "New LED panels", "html": HTML, "segment": "country = JP"}).json()["id"]
    sent = client.post(f"{API}/campaigns/{campaign_id}/send", headers=admin).json()
    assert sent["status"] == "finished" and sent["total"] == 0  # nobody to mail: finished at once
    assert client.post(f"{API}/campaigns/{campaign_id}/send?dry_run=true", headers=admin).status_code == 409


def test_dry_run_of_a_paused_campaign_is_refused_as_its_send(client, admin, runtime) -> None:
    _audience(client, admin)
    campaign_id = client.post(f"{API}/campaigns", headers=admin, json={
        "name": "Paused", "subject": "New LED panels", "html": HTML}).json()["id"]
    client.post(f"{API}/campaigns/{campaign_id}/send", headers=admin)
    assert client.post(f"{API}/campaigns/{campaign_id}/pause", headers=admin).status_code == 200
    refused = client.post(f"{API}/campaigns/{campaign_id}/send?dry_run=true", headers=admin)
    assert refused.status_code == 409 and "paused" in refused.json()["detail"]
