"""What the fine categories do to a contact: block, unsubscribe, challenge, delivered and delay."""

from __future__ import annotations

from sqlalchemy import select

from sendwell.db.models import Alert, Event, Suppression
from sendwell.feedback.classify import classify_message
from sendwell.feedback.service import FEEDBACK_LOOP, record_feedback
from tests.feedback.factories import arf, dsn, make_sent, verp
from tests.helpers import make_contact


def _suppression(session, contact) -> str | None:
    return session.scalar(select(Suppression.reason).where(Suppression.email_hash == contact.email_hash))


def _kinds(session, contact) -> list[tuple[str, str]]:
    rows = session.scalars(select(Event).where(Event.contact_id == contact.id).order_by(Event.id))
    return [(e.kind, e.method) for e in rows]


def _record(session, settings, raw: bytes):
    return record_feedback(session, classification=classify_message(raw), settings=settings, source="test")


def test_block_never_suppresses_and_alerts_the_sender(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    raw = dsn(rcpt=contact.email, status="5.7.26", to=verp(settings, send),
              diag="smtp; 550 5.7.26 This mail is unauthenticated")
    [outcome] = _record(session, settings, raw)
    assert (outcome.action, outcome.suppressed) == ("sender_fault", None)
    assert _suppression(session, contact) is None
    assert session.scalars(select(Alert)).first() is not None


def test_arf_opt_out_unsubscribes_without_a_complaint(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    [outcome] = _record(session, settings, arf(rcpt=contact.email, feedback_type="opt-out", to=verp(settings, send)))
    assert (outcome.action, outcome.suppressed) == ("unsubscribe", "unsubscribe")
    assert _suppression(session, contact) == "unsubscribe"
    assert ("unsubscribed", FEEDBACK_LOOP) in _kinds(session, contact)
    assert all(kind != "complained" for kind, _ in _kinds(session, contact))


def test_challenge_response_changes_nothing(session, settings) -> None:
    contact = make_contact(session)
    make_sent(session, contact)
    raw = (
        f"From: <{contact.email}>\nTo: sales@bright-lighting.example\nSubject: Please verify\n\n"
        "I only accept mail from approved senders. Verify that you are a person: https://x.example/c\n"
    ).encode()
    assert classify_message(raw).category == "challenge"
    [outcome] = _record(session, settings, raw)
    assert outcome.action in ("ignored", "unmatched")
    assert _suppression(session, contact) is None


def test_delivered_and_delayed_reports_leave_the_contact_alone(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    delivered = dsn(rcpt=contact.email, status="2.0.0", action="delivered", to=verp(settings, send),
                    diag="smtp; 250 2.0.0 OK")
    delayed = dsn(rcpt=contact.email, status="4.4.1", action="delayed", to=verp(settings, send),
                  diag="smtp; 421 4.4.1 Connection timed out")
    [first] = _record(session, settings, delivered)
    [second] = _record(session, settings, delayed)
    assert (first.action, first.suppressed) == ("ignored", None)
    assert (second.action, second.suppressed) == ("delay", None)
    assert _suppression(session, contact) is None
