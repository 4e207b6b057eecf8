"""COMPLIANCE rows 26–28: what each kind of feedback does to a contact, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from sendwell.db.models import Alert, Consent, Event, FeedbackReview, Send, Suppression
from sendwell.delivery.planning import plan_campaign
from sendwell.feedback.classify import classify_message, classify_provider_json
from sendwell.feedback.service import record_feedback, soft_bounce_streak
from tests.feedback.factories import arf, dsn, make_campaign, make_sent, verp, verp_detail
from tests.helpers import make_contact

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _suppression(session, contact) -> str | None:
    return session.scalar(select(Suppression.reason).where(Suppression.email_hash == contact.email_hash))


def _events(session, contact) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.contact_id == contact.id).order_by(Event.id)))


def _bounce(session, settings, contact, status, *, action="failed", diag="", send=None, raw_ref=""):
    send = send or make_sent(session, contact)
    raw = dsn(rcpt=contact.email, status=status, to=verp(settings, send), action=action, diag=diag)
    return send, record_feedback(session, classification=classify_message(raw), settings=settings,
                                 raw_ref=raw_ref, source="test")


def test_hard_bounce_suppresses_at_once_and_fails_the_send(session, settings) -> None:
    contact = make_contact(session)
    send, [outcome] = _bounce(session, settings, contact, "5.1.1", diag="smtp; 550 5.1.1 <x>: User unknown")
    assert (outcome.action, outcome.matched_by, outcome.suppressed) == ("hard_bounce", "verp", "hard_bounce")
    assert _suppression(session, contact) == "hard_bounce"
    assert send.state == "failed" and "5.1.1" in send.last_error
    bounced, suppressed = _events(session, contact)
    assert bounced.kind == "bounced" and bounced.send_id == send.id
    assert {k: bounced.data[k] for k in ("kind", "status", "delay", "classification", "source", "matched_by")} == {
        "kind": "hard", "status": "5.1.1", "delay": False, "classification": "hard", "source": "test",
        "matched_by": "verp"}
    assert suppressed.kind == "suppressed" and suppressed.data["reason"] == "hard_bounce"


def test_next_campaign_skips_a_hard_bounced_contact(session, settings) -> None:
    contact = make_contact(session)
    _bounce(session, settings, contact, "5.1.1")
    campaign = make_campaign(session, "next")
    campaign.status = "draft"
    plan_campaign(session, campaign=campaign)
    row = session.scalars(select(Send).where(Send.campaign_id == campaign.id)).one()
    assert (row.state, row.skip_reason) == ("skipped", "bounced")


def test_mailbox_full_5_2_2_is_soft_and_does_not_suppress(session, settings) -> None:
    contact = make_contact(session)
    send, [outcome] = _bounce(session, settings, contact, "5.2.2", diag="smtp; 552 5.2.2 Mailbox full")
    assert outcome.action == "soft_bounce" and outcome.suppressed is None
    assert _suppression(session, contact) is None
    assert send.state == "sent"
    [event] = _events(session, contact)
    assert (event.kind, event.data["kind"], event.data["status"]) == ("bounced", "soft", "5.2.2")


def test_5_7_x_raises_an_alert_and_never_suppresses(session, settings) -> None:
    # Two Microsoft mailboxes (outlook.com, hotmail.de): one provider, so one alert counted twice.
    contact = make_contact(session, email="anna@outlook.com")
    other = make_contact(session, email="bernd@hotmail.de")
    campaign = make_campaign(session)
    diag = "smtp; 550 5.7.515 Access denied, sending domain does not meet the required authentication level"
    for person in (contact, other):
        send = make_sent(session, person, campaign)
        [outcome] = _bounce(session, settings, person, "5.7.515", diag=diag, send=send)[1]
        assert outcome.action == "sender_fault"
    assert _suppression(session, contact) is None and _suppression(session, other) is None
    [alert] = session.scalars(select(Alert)).all()
    assert (alert.kind, alert.severity, alert.campaign_id) == ("sender_fault", "critical", campaign.id)
    assert alert.data["count"] == 2 and alert.data["status"] == "5.7.515"
    assert alert.data["provider"] == "Microsoft" and alert.data["domains"] == ["outlook.com", "hotmail.de"]
    assert alert.message.startswith("Microsoft refused the mail: publish a DMARC record aligned with your From domain")
    [event] = _events(session, contact)
    assert event.kind == "sender_fault" and event.data["status"] == "5.7.515"


def test_three_soft_bounces_on_different_sends_suppress(session, settings) -> None:
    contact = make_contact(session)
    for i in range(2):
        _, [outcome] = _bounce(session, settings, contact, "4.2.2", diag="smtp; 452 4.2.2 Mailbox full")
        assert outcome.suppressed is None
    assert _suppression(session, contact) is None
    _, [outcome] = _bounce(session, settings, contact, "5.2.2", diag="smtp; 552 5.2.2 over quota")
    assert outcome.suppressed == "soft_bounce_streak"
    assert _suppression(session, contact) == "soft_bounce_streak"
    suppressed = _events(session, contact)[-1]
    assert suppressed.kind == "suppressed" and len(suppressed.data["sends"]) == 3


def test_one_soft_bounce_does_not_suppress(session, settings) -> None:
    contact = make_contact(session)
    _bounce(session, settings, contact, "4.2.2")
    assert _suppression(session, contact) is None


def test_soft_bounces_on_the_same_send_count_once(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    for _ in range(4):
        _bounce(session, settings, contact, "4.2.2", send=send)
    assert soft_bounce_streak(session, contact=contact) == [send.id]
    assert _suppression(session, contact) is None


def test_delay_notices_never_suppress(session, settings) -> None:
    contact = make_contact(session)
    for _ in range(6):
        _, [outcome] = _bounce(session, settings, contact, "4.4.1", action="delayed",
                               diag="smtp; 451 4.4.1 no answer from host")
        assert outcome.action == "delay"
    assert _suppression(session, contact) is None
    events = _events(session, contact)
    assert len(events) == 6 and all(e.data["delay"] is True for e in events)


def test_engagement_ends_a_soft_bounce_streak(session, settings) -> None:
    contact = make_contact(session)
    _bounce(session, settings, contact, "4.2.2")
    _bounce(session, settings, contact, "4.2.2")
    contact.last_engaged_at = datetime.now(timezone.utc) + timedelta(seconds=1)
    session.flush()
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    send = make_sent(session, contact)
    raw = dsn(rcpt=contact.email, status="4.2.2", to=verp(settings, send))
    record_feedback(session, classification=classify_message(raw), settings=settings, now=later)
    assert soft_bounce_streak(session, contact=contact) == [send.id]
    assert _suppression(session, contact) is None


def test_a_delivered_dsn_ends_a_soft_bounce_streak(session, settings) -> None:
    contact = make_contact(session)
    _bounce(session, settings, contact, "4.2.2")
    _bounce(session, settings, contact, "4.2.2")
    send = make_sent(session, contact)
    ok = dsn(rcpt=contact.email, status="2.0.0", action="delivered", to=verp(settings, send),
             diag="smtp; 250 2.0.0 OK")
    [outcome] = record_feedback(session, classification=classify_message(ok), settings=settings,
                                now=datetime.now(timezone.utc) + timedelta(seconds=1))
    assert outcome.action == "delivery_confirmed"
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    third = make_sent(session, contact)
    raw = dsn(rcpt=contact.email, status="4.2.2", to=verp(settings, third))
    record_feedback(session, classification=classify_message(raw), settings=settings, now=later)
    assert _suppression(session, contact) is None


def test_arf_abuse_complaint_suppresses_permanently_through_the_opt_out(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    [outcome] = record_feedback(session, classification=classify_message(arf(rcpt=contact.email,
                                to=verp(settings, send))), settings=settings, source="test")
    assert (outcome.action, outcome.suppressed) == ("complaint", "complaint")
    assert _suppression(session, contact) == "complaint"
    kinds = [(e.kind, e.method) for e in _events(session, contact)]
    assert kinds == [("complained", ""), ("unsubscribed", "complaint"), ("suppressed", "")]
    assert _events(session, contact)[0].data["feedback_type"] == "abuse"
    consent = session.scalars(select(Consent).where(Consent.contact_id == contact.id)).one()
    assert consent.withdrawn_at is not None


def test_complaint_after_an_unsubscribe_raises_the_reason(session, settings) -> None:
    from sendwell.optout.service import unsubscribe_contact

    contact = make_contact(session)
    send = make_sent(session, contact)
    unsubscribe_contact(session, contact_id=contact.id, method="one_click")
    assert _suppression(session, contact) == "unsubscribe"
    record_feedback(session, classification=classify_message(arf(rcpt=contact.email, to=verp(settings, send))),
                    settings=settings)
    assert _suppression(session, contact) == "complaint"
    assert [e.method for e in _events(session, contact) if e.kind == "unsubscribed"] == ["one_click"]


def test_arf_auth_failure_is_not_a_complaint(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    raw = arf(rcpt=contact.email, feedback_type="auth-failure", to=verp(settings, send))
    [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings)
    # RFC 6591: our mail failed SPF / DKIM / DMARC there. It feeds the sender alert, not the contact.
    assert outcome.action == "sender_alert"
    assert _suppression(session, contact) is None and _events(session, contact) == []
    [alert] = session.scalars(select(Alert)).all()
    assert alert.kind == "sender_fault" and "DKIM-sign" in alert.message


def test_forged_verp_changes_nothing(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    forged = f"bounce+{send.id}.aaaaaaaaaa@bright-lighting.example"
    raw = dsn(rcpt=contact.email, status="5.1.1", to=forged)
    [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings)
    assert outcome.action == "forged"
    assert _suppression(session, contact) is None and _events(session, contact) == []


def test_envelope_verp_wins_over_the_header(session, settings) -> None:
    contact, bystander = make_contact(session), make_contact(session)
    send = make_sent(session, contact)
    raw = dsn(rcpt=bystander.email, status="5.1.1", to="bounce+1.zzzzzzzzzz@bright-lighting.example")
    [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings,
                                verp_detail=verp_detail(verp(settings, send)))
    assert outcome.contact_id == contact.id
    assert _suppression(session, contact) == "hard_bounce" and _suppression(session, bystander) is None


def test_report_without_verp_is_matched_by_original_message_id(session, settings) -> None:
    contact = make_contact(session, email="Jane.Doe@Example.com")
    send = make_sent(session, contact)
    raw = dsn(rcpt="jane.doe@example.com", status="5.1.1", message_id=send.message_id)
    [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings)
    assert (outcome.matched_by, outcome.send_id) == ("message_id", send.id)
    assert _suppression(session, contact) == "hard_bounce"


def test_a_message_id_found_only_in_the_references_ties_the_report(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    raw = dsn(rcpt=contact.email, status="5.1.1", message_id="<lost@relay.example>")
    [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings,
                                references=["<other@x.example>", send.message_id])
    assert (outcome.action, outcome.matched_by) == ("hard_bounce", "message_id")


def test_the_recipient_address_alone_never_acts(session, settings) -> None:
    contact = make_contact(session, email="Jane.Doe@Example.com")
    make_sent(session, contact)
    raw = dsn(rcpt="jane.doe@example.com", status="5.1.1")
    [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings,
                                raw_ref="sha256:forged", raw=raw, source="smtp")
    assert outcome.action == "unmatched" and outcome.review_id is not None
    assert _suppression(session, contact) is None and _events(session, contact) == []
    review = session.get(FeedbackReview, outcome.review_id)
    assert (review.why, review.category, review.recipients, review.source) == (
        "not_tied", "hard", ["jane.doe@example.com"], "smtp")
    assert review.raw_size == len(raw) and "Final-Recipient" in review.raw
    # Counted like every other decision (sendwell_events{kind="feedback_review"} on /metrics).
    assert session.scalar(select(Event.kind).where(Event.kind == "feedback_review")) == "feedback_review"


def test_our_message_id_sent_to_someone_else_does_not_act(session, settings) -> None:
    contact, bystander = make_contact(session), make_contact(session)
    send = make_sent(session, contact)
    raw = dsn(rcpt=bystander.email, status="5.1.1", message_id=send.message_id)
    [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings, raw=raw)
    assert outcome.action == "unmatched"
    assert session.get(FeedbackReview, outcome.review_id).why == "recipient_mismatch"
    assert _suppression(session, contact) is None and _suppression(session, bystander) is None


def test_the_same_report_twice_counts_once(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    raw = dsn(rcpt=contact.email, status="4.2.2", to=verp(settings, send))
    for expected in ("soft_bounce", "duplicate"):
        [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings,
                                    raw_ref="sha256:abc")
        assert outcome.action == expected
    assert len(_events(session, contact)) == 1


def test_ses_complaint_and_sendgrid_bounce_payloads(session, settings) -> None:
    angry = make_contact(session, email="angry@example.com")
    nobody = make_contact(session, email="nobody@example.com")
    # Real notifications name our Message-ID: SES in mail.commonHeaders, SendGrid in "smtp-id".
    ses = json.loads((FIXTURES / "ses_complaint.json").read_text())
    ses["mail"]["commonHeaders"] = {"messageId": make_sent(session, angry).message_id}
    [complaint] = classify_provider_json(ses)
    assert record_feedback(session, classification=complaint, settings=settings)[0].suppressed == "complaint"
    events = json.loads((FIXTURES / "sendgrid_events.json").read_text())
    events[0]["smtp-id"] = make_sent(session, nobody).message_id
    first = classify_provider_json(events)[0]
    assert record_feedback(session, classification=first, settings=settings)[0].suppressed == "hard_bounce"
    assert _suppression(session, angry) == "complaint" and _suppression(session, nobody) == "hard_bounce"


def test_auto_reply_is_an_event_only(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    raw = (f"From: {contact.email}\nTo: {verp(settings, send)}\nSubject: Out of Office\n"
           "Auto-Submitted: auto-replied\n\nI am out of the office until Monday.\n").encode()
    [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings)
    assert outcome.action == "auto_reply"
    assert [e.kind for e in _events(session, contact)] == ["auto_reply"]
    assert _suppression(session, contact) is None


def test_ses_notification_names_our_send_by_its_message_id(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    payload = {"notificationType": "Bounce",
               "mail": {"messageId": "0100-ses-id", "commonHeaders": {"messageId": send.message_id}},
               "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": contact.email}]}}
    [item] = classify_provider_json(payload)
    [outcome] = record_feedback(session, classification=item, settings=settings, source="ses")
    assert (outcome.matched_by, outcome.send_id) == ("message_id", send.id)
    assert _suppression(session, contact) == "hard_bounce"


def test_the_same_report_processed_concurrently_counts_once(runtime) -> None:
    import threading

    from sendwell.db.session import transaction
    from sendwell.feedback.inbound import process_inbound

    with transaction(runtime.factory) as session:
        contact = make_contact(session)
        address = verp(runtime.settings, make_sent(session, contact))
        contact_id = contact.id
    raw = dsn(rcpt="x@example.org", status="4.2.2", to=address)
    barrier, actions = threading.Barrier(2), []

    def worker() -> None:
        barrier.wait()
        with transaction(runtime.factory) as session:
            actions.extend(r.action for r in process_inbound(session, raw=raw, rcpt_to=[address],
                                                             settings=runtime.settings))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(actions) == ["duplicate", "soft_bounce"]
    with transaction(runtime.factory) as session:
        assert len(session.scalars(select(Event.id).where(Event.contact_id == contact_id)).all()) == 1
