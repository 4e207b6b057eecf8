"""/api/v1/sequences and /api/v1/api-events: scopes, the definition's errors by field, pause and resume,
the per-step report with why people left each step and the step advice, the dry run, and a named event that
enrols a contact on the next scan."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from sendwell.db.models import Campaign, Event
from sendwell.db.session import transaction
from sendwell.sequences.service import advance
from tests.helpers import make_contact
from tests.insight.test_sequence_steps import THREE_DAYS, _leave
from tests.sequences.test_sequences import _advance, _create, _deliver, _tagged
from tests.web.api.conftest import assert_problem

QUOTE = {
    "name": "Quote follow-up",
    "trigger": {"kind": "api_event", "name": "quote_requested"},
    "steps": [
        {"id": "thanks", "kind": "mail", "subject": "Your quote, {{ first_name }}",
         "html": "<p>Dear {{ first_name }}, your quote is on its way.</p>"},
        {"id": "wait-2d", "kind": "wait", "days": 2},
        {"id": "clicked", "kind": "branch", "if": {"clicked": "thanks"}, "then": "next", "else": "end"},
        {"id": "mark", "kind": "set", "stage": "prospect", "tag": "quoted"},
    ],
    "exit": {"replied": True},
    "reentry": {"after_days": 30},
}


@pytest.fixture
def client(client, runtime):
    """A privacy notice, so the mail steps pass the compliance lint as a campaign would."""
    runtime.replace_settings(runtime.settings.replace(privacy_url="https://bright-lighting.example/privacy"))
    return client


def left_at_two_steps(runtime, smtp_server, web) -> int:
    """Trade fair follow-up: of five who got the thanks mail three left it for too many emails and one as not
    relevant; the fifth left the catalogue three days on as their situation changed. Mail goes to a real SMTP
    server; people leave through the List-Unsubscribe link of their mail and answer the survey on `web`."""
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    sequence_id = _create(runtime)
    people = [_tagged(runtime, stage="new_lead")[1] for _ in range(5)]  # a lead's cap lets the catalogue go
    _deliver(runtime, _advance(runtime))
    for address, reason in zip(people, ("too_many", "too_many", "too_many", "not_relevant"), strict=False):
        _leave(web, smtp_server, address, "Thank you for visiting", reason)
    _deliver(runtime, _advance(runtime, now=datetime.now(UTC) + THREE_DAYS))
    _leave(web, smtp_server, people[4], "Our catalogue", "situation_changed")
    return sequence_id


def create(client, auth, data=QUOTE) -> int:
    answer = client.post("/api/v1/sequences", json=data, headers=auth("sequences:write"))
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_sequences_need_their_scopes(client, auth):
    assert_problem(client.post("/api/v1/sequences", json=QUOTE), 401)
    assert_problem(client.post("/api/v1/sequences", json=QUOTE, headers=auth("sequences:read")), 403)
    sequence = create(client, auth)
    assert_problem(client.get("/api/v1/sequences", headers=auth("sequences:write")), 403)
    assert_problem(client.post(f"/api/v1/sequences/{sequence}/pause", headers=auth("sequences:read")), 403)
    listed = client.get("/api/v1/sequences", headers=auth("sequences:read")).json()
    assert [s["name"] for s in listed["items"]] == ["Quote follow-up"] and listed["next_after"] is None


@pytest.mark.both_backends
def test_a_created_sequence_reads_back_with_its_definition(client, auth):
    sequence = create(client, auth)
    shown = client.get(f"/api/v1/sequences/{sequence}", headers=auth("sequences:read")).json()
    assert (shown["status"], shown["version"], shown["trigger"]) == (
        "active", 1, {"kind": "api_event", "name": "quote_requested"})
    assert shown["definition"]["steps"][2]["if"] == {"clicked": "thanks"}
    assert shown["definition"]["reentry"] == {"after_days": 30}
    assert_problem(client.post("/api/v1/sequences", json=QUOTE, headers=auth("sequences:write")), 409)


def test_an_invalid_definition_is_422_naming_the_field(client, auth):
    headers = auth("sequences:write")
    no_tag = dict(QUOTE, trigger={"kind": "tag_added"})
    body = assert_problem(client.post("/api/v1/sequences", json=no_tag, headers=headers), 422, "trigger.tag")
    assert "required for tag_added" in body["detail"]
    backwards = copy.deepcopy(QUOTE)
    backwards["steps"][2]["then"] = "thanks"
    assert_problem(client.post("/api/v1/sequences", json=backwards, headers=headers), 422, "clicked.then")
    unknown_kind = dict(QUOTE, trigger={"kind": "birthday"})
    assert_problem(client.post("/api/v1/sequences", json=unknown_kind, headers=headers), 422, "trigger.kind")


def test_a_mail_step_the_lint_blocks_is_refused(client, auth, runtime):
    runtime.replace_settings(runtime.settings.replace(dkim_key_file=""))
    body = assert_problem(client.post("/api/v1/sequences", json=QUOTE, headers=auth("sequences:write")), 422)
    assert body["type"].endswith("/compliance") and body["errors"]
    assert client.get("/api/v1/sequences", headers=auth("sequences:read")).json()["items"] == []


def test_pause_and_resume_and_unknown_ids(client, auth):
    sequence = create(client, auth)
    headers = auth("sequences:write")
    assert client.post(f"/api/v1/sequences/{sequence}/pause", headers=headers).json()["status"] == "paused"
    assert client.get(f"/api/v1/sequences/{sequence}", headers=auth("sequences:read")).json()["status"] == "paused"
    assert client.post(f"/api/v1/sequences/{sequence}/resume", headers=headers).json()["status"] == "active"
    for path in ("", "/report", "/dry-run"):
        assert_problem(client.get(f"/api/v1/sequences/999{path}", headers=auth("sequences:read")), 404)
    assert_problem(client.post("/api/v1/sequences/999/pause", headers=headers), 404)
    assert_problem(client.put("/api/v1/sequences/999", json=QUOTE, headers=headers), 404)
    assert_problem(client.put(f"/api/v1/sequences/{sequence}", json=dict(QUOTE, steps=[]), headers=headers), 422,
                   "steps")


@pytest.mark.both_backends
def test_a_named_event_enrols_the_contact_on_the_next_scan(client, auth, runtime):
    sequence = create(client, auth)
    with transaction(runtime.factory) as s:
        anna = make_contact(s, email="anna@importer.example").id
        other = make_contact(s).id
    headers = auth("events:write")
    answer = client.post("/api/v1/api-events", headers=headers, json={
        "email": "anna@importer.example", "name": "quote_requested", "data": {"product": "LED panel", "qty": 40}})
    assert answer.status_code == 202, answer.text
    client.post("/api/v1/api-events", headers=headers, json={"contact": other, "name": "newsletter_read"})
    with transaction(runtime.factory) as s:
        event = s.get(Event, answer.json()["id"])
        assert (event.kind, event.contact_id, event.data) == (
            "api_event", anna, {"name": "quote_requested", "product": "LED panel", "qty": 40})
    dry = client.get(f"/api/v1/sequences/{sequence}/dry-run", headers=auth("sequences:read")).json()
    assert (dry["would_enter"], dry["contacts"]) == (1, [{"id": anna, "email": "anna@importer.example"}])
    with transaction(runtime.factory) as s:
        assert advance(s, settings=runtime.settings)["entered"] == 1
    report = client.get(f"/api/v1/sequences/{sequence}/report", headers=auth("sequences:read")).json()
    assert report["enrollments"] == {"active": 1}
    thanks = report["steps"][0]
    assert (thanks["id"], thanks["kind"], thanks["runs"], thanks["paused"], thanks["sent"]) == (
        "thanks", "mail", 1, False, 0)
    assert thanks["opened_rate"] is None and report["steps"][1]["sent"] is None
    assert (report["reasons"], report["recommendations"]) == ({}, [])


def test_the_report_counts_why_people_left_each_step_and_gives_the_step_advice(client, auth, runtime,
                                                                               smtp_server):
    sequence = left_at_two_steps(runtime, smtp_server, client)
    report = client.get(f"/api/v1/sequences/{sequence}/report", headers=auth("sequences:read")).json()
    assert report["reasons"] == {"catalogue": {"situation_changed": 1},
                                 "thanks": {"not_relevant": 1, "too_many": 3}}
    assert report["recommendations"] == [{
        "code": "sequence_step_wait", "step": "thanks", "title": "Leave more time before step “thanks”",
        "why": "3 of 3 people who left this sequence because of too many emails left at its first mail, "
               "step “thanks”: they get your other mails too. Start the sequence with a wait, or lower the "
               "frequency cap of their stage.",
        "evidence": {"step": "thanks", "wait": None, "answers": 3, "of": 3}}]


def test_an_unknown_contact_is_404_naming_the_field(client, auth):
    headers = auth("events:write")
    assert_problem(client.post("/api/v1/api-events", headers=headers, json={"contact": 999, "name": "x"}), 404,
                   "contact")
    assert_problem(client.post("/api/v1/api-events", headers=headers, json={"email": "no@one.example", "name": "x"}),
                   404, "email")
    assert_problem(client.post("/api/v1/api-events", headers=headers, json={"name": "x"}), 422)
    assert_problem(client.post("/api/v1/api-events", headers=auth("events:read"), json={"contact": 1, "name": "x"}),
                   403)


def test_a_paused_step_resumes(client, auth, runtime):
    sequence = create(client, auth)
    headers = auth("sequences:write")
    assert_problem(client.post(f"/api/v1/sequences/{sequence}/steps/wait-2d/resume", headers=headers), 409)
    with transaction(runtime.factory) as s:
        campaign = s.scalar(select(Campaign).where(Campaign.name == "Quote follow-up · thanks"))
        campaign.status = "paused"
        campaign_id = campaign.id
    report = client.get(f"/api/v1/sequences/{sequence}/report", headers=auth("sequences:read")).json()
    assert report["steps"][0]["paused"] is True
    answer = client.post(f"/api/v1/sequences/{sequence}/steps/thanks/resume", headers=headers)
    assert answer.json() == {"campaigns": [campaign_id]}
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "sending"


def test_the_openapi_document_describes_sequences_and_api_events(client):
    spec = client.get("/api/v1/openapi.json").json()
    create_op = spec["paths"]["/sequences"]["post"]
    assert {"201", "409", "422"} <= set(create_op["responses"])
    assert spec["components"]["schemas"]["SequenceIn"]["examples"][0]["trigger"]["kind"] == "tag_added"
    assert "202" in spec["paths"]["/api-events"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    reasons = schemas["SequenceReportOut"]["properties"]["reasons"]["additionalProperties"]
    assert set(reasons["propertyNames"]["enum"]) == {"not_relevant", "too_many", "never_signed_up",
                                                      "situation_changed", "other"}
    assert schemas["SequenceReportOut"]["properties"]["recommendations"]["items"]["$ref"].endswith("/StepAdvice")
    assert {"code", "step", "title", "why", "evidence"} <= set(schemas["StepAdvice"]["properties"])
    for path in ("/sequences/{sequence_id}", "/sequences/{sequence_id}/report", "/sequences/{sequence_id}/dry-run",
                 "/sequences/{sequence_id}/pause", "/sequences/{sequence_id}/steps/{step_id}/resume"):
        assert path in spec["paths"]


@pytest.mark.both_backends
def test_put_stores_a_new_version(client, auth):
    sequence = create(client, auth)
    changed = copy.deepcopy(QUOTE)
    changed["steps"][1]["days"] = 5
    answer = client.put(f"/api/v1/sequences/{sequence}", json=changed, headers=auth("sequences:write"))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["version"], answer.json()["definition"]["steps"][1]["days"]) == (2, 5)
    assert client.get(f"/api/v1/sequences/{sequence}", headers=auth("sequences:read")).json()["version"] == 2


def test_every_trigger_and_step_kind_of_the_definition_is_accepted(client, auth):
    data = {"name": "Re-permission", "trigger": {"kind": "date", "field": "consent_expires_at", "days": -30},
            "steps": [{"id": "tell-crm", "kind": "notify", "url": "https://crm.example/hooks/sendwell",
                       "event": "consent.lapsing"}, {"id": "mark", "kind": "set", "tag": "asked"}]}
    sequence = create(client, auth, data)
    shown = client.get(f"/api/v1/sequences/{sequence}", headers=auth("sequences:read")).json()
    assert shown["trigger"] == data["trigger"] and shown["definition"]["steps"][0]["event"] == "consent.lapsing"
    plain = dict(data, name="x", steps=[dict(data["steps"][0], url="http://crm.example/hook")])
    assert_problem(client.post("/api/v1/sequences", json=plain, headers=auth("sequences:write")), 422,
                   "steps[1] (tell-crm).url")
