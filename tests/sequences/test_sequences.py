"""Sequences end to end: enrolment by scan, mail steps through the real delivery path to a real SMTP
server, waits, exits, stage caps, branches, and each step done once however often the advance runs."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from sendwell.db.models import Contact, Event, Send, SequenceEnrollment, SequenceStepRun
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends
from sendwell.delivery.dkim import generate_private_key
from sendwell.insight.alerts import Thresholds, check_campaign
from sendwell.optout.service import unsubscribe_contact
from sendwell.sequences.definition import DefinitionError, parse_definition
from sendwell.sequences.report import due_campaigns, enrollments, step_runs
from sendwell.sequences.service import (
    advance,
    advance_due,
    create_sequence,
    dry_run,
    enrol_for_event,
    record_api_event,
    resume_step,
    step_report,
)
from tests.helpers import make_contact, run_once

FAIR = {
    "name": "Trade fair follow-up",
    "trigger": {"kind": "tag_added", "tag": "fair-2026"},
    "steps": [
        {"id": "thanks", "kind": "mail", "subject": "Thank you for visiting, {{ first_name }}",
         "html": "<p>Dear {{ first_name }}, thank you for visiting our stand.</p>"},
        {"id": "wait-3d", "kind": "wait", "days": 3},
        {"id": "catalogue", "kind": "mail", "subject": "Our catalogue",
         "html": "<p>Dear {{ first_name }}, here is our catalogue.</p>"},
    ],
}


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dkim") / "sequences.pem"
    path.write_bytes(generate_private_key("ed25519"))
    return str(path)


@pytest.fixture
def runtime(runtime, dkim_key):
    """Settings the send gate passes (DKIM, privacy notice): a mail step is linted as a campaign is."""
    runtime.replace_settings(runtime.settings.replace(
        dkim_domain="bright-lighting.example", dkim_key_file=dkim_key, privacy_url="https://bright-lighting.example/privacy"))
    return runtime


@pytest.fixture
def smtp_runtime(runtime, smtp_server):
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    return runtime


def _create(runtime, data=FAIR) -> int:
    with transaction(runtime.factory) as s:
        return create_sequence(s, settings=runtime.settings, data=data).id


def _advance(runtime, now=None) -> dict:
    with transaction(runtime.factory) as s:
        return advance(s, settings=runtime.settings, now=now)


def _deliver(runtime, report: dict) -> None:
    for campaign_id in {c for c, _ in report["batches"]}:
        run_once(runtime, campaign_id)


def _tagged(runtime, **kw) -> tuple[int, str]:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, tags=["fair-2026"], **kw)
        return contact.id, contact.email


def test_tagged_contact_gets_step_one_then_step_two_three_days_later(smtp_runtime, smtp_server) -> None:
    sequence_id = _create(smtp_runtime)
    contact_id, address = _tagged(smtp_runtime, stage="new_lead")
    with transaction(smtp_runtime.factory) as s:
        make_contact(s, tags=["other"])  # not tagged fair-2026: never enters
    report = _advance(smtp_runtime)
    assert report["entered"] == 1
    _deliver(smtp_runtime, report)
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [address]
    assert b"Thank you for visiting" in smtp_server.messages[0].data

    _deliver(smtp_runtime, _advance(smtp_runtime))  # nothing due yet: the wait holds
    assert len(smtp_server.messages) == 1

    later = datetime.now(timezone.utc) + timedelta(days=3, minutes=1)
    _deliver(smtp_runtime, _advance(smtp_runtime, now=later))
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [address, address]
    assert b"Our catalogue" in smtp_server.messages[1].data
    with transaction(smtp_runtime.factory) as s:
        (enrollment,) = enrollments(s, sequence_id=sequence_id)
        assert (enrollment.state, enrollment.step_id) == ("done", "")
        assert [r.step_id for r in step_runs(s, sequence_id=sequence_id)] == ["thanks", "wait-3d", "catalogue"]
        report = step_report(s, sequence_id=sequence_id)
    assert [(r["id"], r.get("sent")) for r in report["steps"]] == [("thanks", 1), ("wait-3d", None), ("catalogue", 1)]


def test_unsubscribe_after_step_one_means_no_step_two(smtp_runtime, smtp_server) -> None:
    sequence_id = _create(smtp_runtime)
    contact_id, _ = _tagged(smtp_runtime, stage="new_lead")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    assert len(smtp_server.messages) == 1
    with transaction(smtp_runtime.factory) as s:
        unsubscribe_contact(s, contact_id=contact_id, method="one_click")
    report = _advance(smtp_runtime, now=datetime.now(timezone.utc) + timedelta(days=4))
    assert report["exited"] == {"unsubscribed": 1}
    _deliver(smtp_runtime, report)
    assert len(smtp_server.messages) == 1
    with transaction(smtp_runtime.factory) as s:
        (enrollment,) = enrollments(s, sequence_id=sequence_id)
        assert (enrollment.state, enrollment.exited_reason) == ("exited", "unsubscribed")
        assert s.scalar(select(func.count()).select_from(Send)) == 1


def test_prospect_over_the_stage_cap_waits_and_is_sent_when_the_cap_allows(smtp_runtime, smtp_server) -> None:
    # The default stage cap: a prospect gets one marketing mail per 7 days.
    sequence_id = _create(smtp_runtime)
    _, address = _tagged(smtp_runtime, stage="prospect")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    assert len(smtp_server.messages) == 1
    three_days = datetime.now(timezone.utc) + timedelta(days=3, minutes=1)
    _deliver(smtp_runtime, _advance(smtp_runtime, now=three_days))
    assert len(smtp_server.messages) == 1  # over the cap: not sent, not skipped
    with transaction(smtp_runtime.factory) as s:
        run = s.scalar(select(SequenceStepRun).where(SequenceStepRun.step_id == "catalogue"))
        assert (run.outcome, run.wait_reason) == ("deferred", "frequency_cap")
        send = s.get(Send, run.send_id)
        assert send.state == "deferred" and send.retry_at > three_days + timedelta(days=3)
        campaign_id, retry_at = send.campaign_id, send.retry_at
        (enrollment,) = enrollments(s, sequence_id=sequence_id)
        assert enrollment.wait_reason == "frequency_cap"
    # When the cap allows it, the same send is claimed through the real path and goes out.
    with transaction(smtp_runtime.factory) as s:
        claimed = claim_sends(s, campaign_id=campaign_id, now=retry_at + timedelta(minutes=1))
    assert claimed == [run.send_id]
    deliverer = smtp_runtime.make_deliverer()
    try:
        deliverer.deliver(campaign_id, claimed)
    finally:
        deliverer.transport.close()
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [address, address]


BRANCH = {
    "name": "Clicked or not",
    "trigger": {"kind": "tag_added", "tag": "fair-2026"},
    "steps": [
        {"id": "thanks", "kind": "mail", "subject": "Thank you", "html": "<p>See <a href=\"https://bright-lighting.example/c\">the catalogue</a></p>"},
        {"id": "wait", "kind": "wait", "days": 1},
        {"id": "clicked", "kind": "branch", "if": {"clicked": "thanks"}, "then": "hot", "else": "cold"},
        {"id": "hot", "kind": "set", "stage": "prospect", "tag": "hot"},
        {"id": "done-hot", "kind": "branch", "if": {"segment": "stage = prospect"}, "then": "end", "else": "end"},
        {"id": "cold", "kind": "set", "tag": "cold"},
    ],
}


def test_branch_on_clicked_step_one_takes_both_paths(smtp_runtime, smtp_server) -> None:
    sequence_id = _create(smtp_runtime, BRANCH)
    clicker, _ = _tagged(smtp_runtime, stage="new_lead")
    idle, _ = _tagged(smtp_runtime, stage="new_lead")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    with transaction(smtp_runtime.factory) as s:
        send = s.scalar(select(Send).where(Send.contact_id == clicker))
        s.add(Event(kind="clicked", contact_id=clicker, campaign_id=send.campaign_id, send_id=send.id, method="web"))
    _advance(smtp_runtime, now=datetime.now(timezone.utc) + timedelta(days=2))
    with transaction(smtp_runtime.factory) as s:
        runs = {(r.enrollment_id, r.step_id): r.outcome for r in step_runs(s, sequence_id=sequence_id)}
        by_contact = {e.contact_id: e for e in enrollments(s, sequence_id=sequence_id)}
        assert runs[(by_contact[clicker].id, "clicked")] == "then"
        assert runs[(by_contact[idle].id, "clicked")] == "else"
        assert (by_contact[clicker].id, "cold") not in runs and (by_contact[idle].id, "hot") not in runs
        assert s.get(Contact, clicker).stage == "prospect" and "hot" in s.get(Contact, clicker).tags
        assert s.get(Contact, idle).stage == "new_lead" and "cold" in s.get(Contact, idle).tags
        assert {e.state for e in by_contact.values()} == {"done"}


def test_advancing_twice_or_from_two_processes_sends_each_step_once(smtp_runtime, smtp_server) -> None:
    _create(smtp_runtime)
    for _ in range(3):
        _tagged(smtp_runtime, stage="new_lead")
    errors: list[BaseException] = []
    reports: list[dict] = []

    def run() -> None:
        try:
            reports.append(_advance(smtp_runtime))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reports.append(_advance(smtp_runtime))
    for report in reports:
        _deliver(smtp_runtime, report)
    assert len(smtp_server.messages) == 3
    assert len({m.rcpt_tos[0] for m in smtp_server.messages}) == 3
    s = smtp_runtime.factory()
    try:
        assert s.scalar(select(func.count()).select_from(SequenceStepRun)
                        .where(SequenceStepRun.step_id == "thanks")) == 3
        # The unique (enrollment, step) row: a second run of the step for the same pass is refused.
        run = s.scalar(select(SequenceStepRun).limit(1))
        s.add(SequenceStepRun(enrollment_id=run.enrollment_id, step_id=run.step_id, kind="mail"))
        with pytest.raises(IntegrityError):
            s.flush()
    finally:
        s.rollback()
        s.close()


def test_triggers_by_stage_change_api_event_and_signup(runtime) -> None:
    with transaction(runtime.factory) as s:
        staged = create_sequence(s, settings=runtime.settings, data={
            **FAIR, "name": "Prospects", "trigger": {"kind": "stage_changed", "from": "new_lead", "to": "prospect"}}).id
        api = create_sequence(s, settings=runtime.settings, data={
            **FAIR, "name": "Quote", "trigger": {"kind": "api_event", "name": "quote_requested"}}).id
        signup = create_sequence(s, settings=runtime.settings, data={
            **FAIR, "name": "Welcome", "trigger": {"kind": "signup_confirmed", "form_id": 7}}).id
        a, b, c = (make_contact(s, stage="new_lead").id for _ in range(3))
        s.add(Event(kind="contact_edited", contact_id=a, method="admin",
                    data={"changes": {"stage": ["new_lead", "prospect"]}}))
        s.add(Event(kind="contact_edited", contact_id=c, method="admin",
                    data={"changes": {"stage": ["customer", "prospect"]}}))  # from another stage: no
        record_api_event(s, contact_id=b, name="quote_requested")
        assert enrol_for_event(s, kind="signup_confirmed", contact_id=c, form_id=7) == [signup]
        assert enrol_for_event(s, kind="signup_confirmed", contact_id=a, form_id=8) == []
    with transaction(runtime.factory) as s:
        assert dry_run(s, sequence_id=staged)["contacts"][0]["id"] == a
    _advance(runtime)
    with transaction(runtime.factory) as s:
        assert [e.contact_id for e in enrollments(s, sequence_id=staged)] == [a]
        assert [e.contact_id for e in enrollments(s, sequence_id=api)] == [b]
        assert [e.contact_id for e in enrollments(s, sequence_id=signup)] == [c]
        assert dry_run(s, sequence_id=staged)["would_enter"] == 0  # the scan moved past them


def test_reentry_after_days_and_never(runtime) -> None:
    with transaction(runtime.factory) as s:
        again = create_sequence(s, settings=runtime.settings, data={
            **FAIR, "name": "Again", "trigger": {"kind": "api_event", "name": "visit"}, "reentry": {"after_days": 30},
            "steps": [{"id": "w", "kind": "wait", "days": 1}]}).id
        contact = make_contact(s).id
        record_api_event(s, contact_id=contact, name="visit")
    _advance(runtime)
    now = datetime.now(timezone.utc)
    with transaction(runtime.factory) as s:
        record_api_event(s, contact_id=contact, name="visit")
    _advance(runtime, now=now + timedelta(days=2))  # done, but not 30 days since entering
    with transaction(runtime.factory) as s:
        assert [e.round for e in enrollments(s, sequence_id=again)] == [1]
        record_api_event(s, contact_id=contact, name="visit")
    _advance(runtime, now=now + timedelta(days=31))
    with transaction(runtime.factory) as s:
        assert [e.round for e in enrollments(s, sequence_id=again)] == [1, 2]


def test_spike_alert_pauses_the_step_not_the_sequence(smtp_runtime, smtp_server) -> None:
    sequence_id = _create(smtp_runtime)
    contact_id, _ = _tagged(smtp_runtime, stage="new_lead")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    with transaction(smtp_runtime.factory) as s:
        step_one = due_campaigns(s, sequence_id=sequence_id)[0]
        unsubscribe_contact(s, contact_id=contact_id, method="one_click", campaign_id=step_one)
        thresholds = dataclasses.replace(Thresholds.from_settings(smtp_runtime.settings), min_sample=1)
        alerts = check_campaign(s, campaign_id=step_one, thresholds=thresholds)
        assert alerts and alerts[0].severity == "critical"
    newcomer, address = _tagged(smtp_runtime, stage="new_lead")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    assert len(smtp_server.messages) == 1  # the step is paused: the newcomer waits at it
    with transaction(smtp_runtime.factory) as s:
        report = step_report(s, sequence_id=sequence_id)
        waiting = [e for e in enrollments(s, sequence_id=sequence_id) if e.contact_id == newcomer][0]
        assert (waiting.step_id, waiting.wait_reason) == ("thanks", "step_paused")
    assert report["status"] == "active"
    assert report["steps"][0]["paused"] is True and report["steps"][0]["unsubscribed"] == 1
    assert report["steps"][0]["unsubscribed_rate"] == 1.0
    with transaction(smtp_runtime.factory) as s:
        resume_step(s, sequence_id=sequence_id, step_id="thanks")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    assert [m.rcpt_tos[0] for m in smtp_server.messages][1:] == [address]


def test_definition_errors_name_the_field() -> None:
    with pytest.raises(DefinitionError, match="trigger.kind"):
        parse_definition({**FAIR, "trigger": {"kind": "moon"}})
    with pytest.raises(DefinitionError, match="later step"):
        parse_definition({**BRANCH, "steps": [*BRANCH["steps"][:2], {**BRANCH["steps"][2], "then": "thanks"},
                                              *BRANCH["steps"][3:]]})
    with pytest.raises(DefinitionError, match="used twice"):
        parse_definition({**FAIR, "steps": [FAIR["steps"][0], FAIR["steps"][0]]})


def test_paused_sequence_runs_no_step(runtime) -> None:
    from sendwell.sequences.service import set_status

    sequence_id = _create(runtime)
    _tagged(runtime)
    with transaction(runtime.factory) as s:
        set_status(s, sequence_id=sequence_id, status="paused")
    assert _advance(runtime)["entered"] == 0
    with transaction(runtime.factory) as s:
        set_status(s, sequence_id=sequence_id, status="active")
        s.execute(update(SequenceEnrollment).values(state="active"))
    assert _advance(runtime)["entered"] == 1


def test_the_worker_advance_returns_the_batches_to_enqueue(runtime) -> None:
    assert advance_due(runtime.factory, settings=runtime.settings) == []  # no sequence: nothing, no lock
    _create(runtime)
    contact_id, _ = _tagged(runtime, stage="new_lead")
    batches = advance_due(runtime.factory, settings=runtime.settings)
    with transaction(runtime.factory) as s:
        (send,) = s.scalars(select(Send)).all()
    assert batches == [(send.campaign_id, [send.id])] and send.contact_id == contact_id and send.state == "queued"


def test_the_worker_scan_advances_sequences_and_queues_their_mails(runtime) -> None:
    from sendwell.worker.queue import Queue

    _create(runtime)
    _tagged(runtime, stage="new_lead")
    queue = Queue(runtime)
    stop = threading.Event()
    queue.insight = stop.set  # the last part of the scan's first round: stop after one round
    queue._recovery_loop(stop)
    assert queue.pending() == 1
    with transaction(runtime.factory) as s:
        assert [send.state for send in s.scalars(select(Send))] == ["queued"]


def test_topic_subscribed_from_the_admin_the_preference_center_and_a_signup(runtime) -> None:
    from sendwell.contacts.records import ensure_topic

    with transaction(runtime.factory) as s:
        topic = ensure_topic(s, slug="led-panels")
        sequence_id = create_sequence(s, settings=runtime.settings, data={
            **FAIR, "name": "Panels", "trigger": {"kind": "topic_subscribed", "topic": "led-panels"}}).id
        admin, centre, signup, other = (make_contact(s).id for _ in range(4))
        s.add(Event(kind="contact_edited", contact_id=admin, method="admin", data={"changes": {"topics_added": ["led-panels"]}}))
        s.add(Event(kind="preferences_changed", contact_id=centre, method="preference_center",
                    data={"changes": {"topics_added": [topic.id]}}))
        s.add(Event(kind="signup_confirmed", contact_id=signup, method="double_opt_in",
                    data={"form_id": 3, "topics": ["led-panels"]}))
        s.add(Event(kind="contact_edited", contact_id=other, method="admin", data={"changes": {"topics_added": ["other"]}}))
    _advance(runtime)
    with transaction(runtime.factory) as s:
        assert sorted(e.contact_id for e in enrollments(s, sequence_id=sequence_id)) == [admin, centre, signup]


def test_a_mail_step_can_use_a_saved_template(runtime) -> None:
    from sendwell.db.models import Campaign, MailTemplate

    with transaction(runtime.factory) as s:
        template = MailTemplate(name="Catalogue", subject="Our catalogue", html="<p>Dear {{ first_name }}</p>")
        s.add(template)
        s.flush()
        sequence_id = create_sequence(s, settings=runtime.settings, data={
            **FAIR, "name": "Templated", "steps": [{"id": "cat", "kind": "mail", "template_id": template.id}]}).id
        with pytest.raises(DefinitionError, match="no saved template"):
            create_sequence(s, settings=runtime.settings, data={
                **FAIR, "name": "Missing", "steps": [{"id": "cat", "kind": "mail", "template_id": 999}]})
    with transaction(runtime.factory) as s:
        (campaign_id,) = due_campaigns(s, sequence_id=sequence_id)
        campaign = s.get(Campaign, campaign_id)
        assert (campaign.subject, campaign.over_cap, campaign.status) == ("Our catalogue", "defer", "sending")


def test_reaching_the_goal_ends_the_pass_and_its_waiting_mail_is_not_sent(smtp_runtime, smtp_server) -> None:
    sequence_id = _create(smtp_runtime, {**FAIR, "exit": {"goal": "stage = customer"}})
    contact_id, _ = _tagged(smtp_runtime, stage="prospect")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    _advance(smtp_runtime, now=datetime.now(timezone.utc) + timedelta(days=3, minutes=1))  # catalogue: over the cap
    with transaction(smtp_runtime.factory) as s:
        s.get(Contact, contact_id).stage = "customer"
    report = _advance(smtp_runtime, now=datetime.now(timezone.utc) + timedelta(days=4))
    assert report["exited"] == {"goal_reached": 1}
    with transaction(smtp_runtime.factory) as s:
        (enrollment,) = enrollments(s, sequence_id=sequence_id)
        assert (enrollment.state, enrollment.exited_reason) == ("exited", "goal_reached")
        states = sorted((send.state, send.skip_reason) for send in s.scalars(select(Send)))
    assert states == [("sent", None), ("skipped", "sequence_exited")]


def test_a_finished_step_campaign_reopens_for_newcomers_and_is_rolled_up_again(smtp_runtime, smtp_server) -> None:
    from sendwell.db.models import Campaign
    from sendwell.insight.rollup import roll_up

    sequence_id = _create(smtp_runtime)
    _tagged(smtp_runtime, stage="new_lead")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    with transaction(smtp_runtime.factory) as s:
        roll_up(s)
        step_one = due_campaigns(s, sequence_id=sequence_id)[0]
        assert s.get(Campaign, step_one).status == "finished"
        assert s.get(Campaign, step_one).delivered_rolled_up_at is not None
    _tagged(smtp_runtime, stage="new_lead")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    assert len(smtp_server.messages) == 2
    with transaction(smtp_runtime.factory) as s:
        campaign = s.get(Campaign, step_one)
        assert (campaign.status, campaign.delivered_rolled_up_at) == ("finished", None)
