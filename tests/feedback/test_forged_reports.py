"""Forged reports to the bare bounce address act on nobody; real ones tied to our send act; sender alerts."""

from __future__ import annotations

import smtplib

from sqlalchemy import select

from sendwell.db.models import Alert, Event, FeedbackReview, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.feedback.classify import classify_message
from sendwell.feedback.inbound import diagnostic_of, message_references, process_inbound
from sendwell.feedback.listener import FeedbackListener
from sendwell.feedback.review import list_reviews
from sendwell.feedback.service import record_feedback
from sendwell.feedback.signals import fix_for, provider_for, provider_of
from tests.feedback.factories import DOMAIN, arf, dsn, make_campaign, make_sent, reply, verp
from tests.helpers import make_contact

BARE = f"bounce@{DOMAIN}"


def _people(runtime, count: int = 3) -> list[tuple[str, str, str]]:
    """Contacts who were mailed, committed: (email, email hash, Message-ID of their mail)."""
    with transaction(runtime.factory) as session:
        out = []
        for _ in range(count):
            contact = make_contact(session)
            out.append((contact.email, contact.email_hash, make_sent(session, contact).message_id))
        return out


def _suppressed(runtime) -> dict[str, str]:
    with transaction(runtime.factory) as session:
        return dict(session.execute(select(Suppression.email_hash, Suppression.reason)).all())


def test_forged_dsn_and_arf_to_the_bare_bounce_address_suppress_nobody(runtime) -> None:
    (a, _, _), (b, _, _), (c, c_hash, c_id) = _people(runtime)
    forged_dsn = dsn(rcpt=a, status="5.1.1", diag="smtp; 550 5.1.1 user unknown")  # no VERP, no Message-ID of ours
    forged_arf = arf(rcpt=b)
    real_arf = arf(rcpt=c, message_id=c_id)  # a feedback loop quoting the mail we sent to c
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            for raw in (forged_dsn, forged_arf, real_arf):
                client.sendmail("", [BARE], raw)
        actions = [r.action for r in listener.handler.results]
    assert actions == ["unmatched", "unmatched", "complaint"]
    assert _suppressed(runtime) == {c_hash: "complaint"}
    with transaction(runtime.factory) as session:
        reviews = list_reviews(session)
        # Newest first, each with why it was not acted on and the raw message for a person.
        assert [(r.category, r.recipients, r.why, r.source) for r in reviews] == [
            ("complaint", [b], "not_tied", "smtp"), ("hard", [a], "not_tied", "smtp")]
        assert "Final-Recipient: rfc822; " + a in reviews[1].raw
        assert session.scalars(select(Event).where(Event.contact_id.is_not(None),
                                                   Event.kind.in_(("bounced", "complained")))).all()[0].data[
            "matched_by"] == "message_id"


def test_a_real_dsn_with_our_message_id_to_the_bare_address_acts(runtime) -> None:
    [(a, a_hash, a_id)] = _people(runtime, 1)
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            client.sendmail("", [BARE], dsn(rcpt=a, status="5.1.1", message_id=a_id))
            # The same mail again is a duplicate; a forged copy for the same address with a made-up id is kept.
            client.sendmail("", [BARE], dsn(rcpt=a, status="5.1.1", message_id="<1.abcdefabcdef@x.example>"))
        actions = [r.action for r in listener.handler.results]
    assert actions == ["hard_bounce", "unmatched"]
    assert _suppressed(runtime) == {a_hash: "hard_bounce"}


def test_message_id_quoted_in_a_plain_bounce_ties_it(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    raw = (f"From: MAILER-DAEMON@mx.example.net\nTo: {BARE}\nSubject: Mail delivery failed\n\n"
           f"This message was created automatically by mail delivery software.\n\n"
           f"  {contact.email}\n    SMTP error from remote mail server after RCPT TO:<{contact.email}>:\n"
           f"    550 5.1.1 No such user here\n\n------ This is a copy of the message, including all the headers.\n\n"
           f"> Message-ID: {send.message_id}\n> Subject: LED panels\n").encode()
    assert send.message_id in message_references(raw)
    [result] = process_inbound(session, raw=raw, rcpt_to=[BARE], settings=settings)
    assert (result.action, result.outcomes[0].matched_by) == ("hard_bounce", "message_id")


def test_a_block_raises_one_alert_per_provider_with_its_fix(session, settings) -> None:
    campaign = make_campaign(session)
    cases = [
        ("anna@outlook.com", "5.7.515", "550 5.7.515 Access denied, sending domain does not meet the required "
                                        "authentication level"),
        ("bob@hotmail.co.uk", "5.7.515", "550 5.7.515 Access denied"),
        ("carl@gmail.com", "5.7.26", "550 5.7.26 This mail has been blocked because the sender is "
                                     "unauthenticated"),
        ("dora@googlemail.com", "5.7.25", "550 5.7.25 The IP address sending this message does not have a PTR "
                                          "record setup"),
        ("erik@qq.com", "5.7.1", "550 5.7.1 Message rejected as spam: poor sender reputation"),
        # A company domain hosted by Microsoft 365: the provider-only code names Microsoft.
        ("buyer@licht-handel.example", "5.7.515", "550 5.7.515 Access denied, sending domain does not meet "
                                                  "the required authentication level"),
    ]
    for email, status, diag in cases:
        contact = make_contact(session, email=email)
        raw = dsn(rcpt=email, status=status, to=verp(settings, make_sent(session, contact, campaign)),
                  diag=f"smtp; {diag}")
        [outcome] = record_feedback(session, classification=classify_message(raw), settings=settings,
                                    diagnostic=diagnostic_of(raw))
        assert outcome.action == "sender_fault" and outcome.suppressed is None
    alerts = {a.data["provider"]: a for a in session.scalars(select(Alert).where(Alert.kind == "sender_fault"))}
    assert sorted(alerts) == ["Google", "Microsoft", "Tencent"]
    assert alerts["Microsoft"].data["count"] == 3
    assert alerts["Microsoft"].message.startswith(
        "Microsoft refused the mail: publish a DMARC record aligned with your From domain")
    google = alerts["Google"]
    assert google.data["count"] == 2 and set(google.data["fixes"]) == {"authentication", "ptr"}
    assert "DKIM-sign" in google.message and "PTR" in google.message
    assert "slow down, check list quality" in alerts["Tencent"].message
    assert session.scalar(select(Suppression.id)) is None


def test_an_auth_failure_report_raises_the_sender_alert(runtime) -> None:
    [(a, _, _)] = _people(runtime, 1)
    raw = arf(rcpt="someone@yahoo.com", feedback_type="auth-failure").replace(
        b"Feedback-Type: auth-failure\n", b"Feedback-Type: auth-failure\nAuth-Failure: dmarc\n")
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            client.sendmail("", [BARE], raw)
            client.sendmail("", [BARE], raw.replace(b"Abuse report", b"Another report"))
        actions = [r.action for r in listener.handler.results]
    assert actions == ["sender_alert", "sender_alert"]
    with transaction(runtime.factory) as session:
        [alert] = session.scalars(select(Alert)).all()
        assert (alert.kind, alert.data["provider"], alert.data["count"]) == ("sender_fault", "Yahoo", 2)
        assert "Yahoo refused the mail:" in alert.message and "DMARC" in alert.message
        assert session.scalar(select(FeedbackReview.id)) is None
    assert _suppressed(runtime) == {}


def test_a_reply_opt_out_records_its_authentication_results(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    extra = (f"Authentication-Results: mx.{DOMAIN}; dkim=pass header.d=importer.example; spf=fail "
             "smtp.mailfrom=importer.example; dmarc=fail header.from=importer.example\n"
             "Authentication-Results: relay.example; dkim=none\n")
    raw = reply(sender=contact.email, body="Please unsubscribe me.", in_reply_to=send.message_id, extra=extra)
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"sales@{DOMAIN}"], settings=settings)
    assert result.action == "unsubscribed"
    event = session.scalars(select(Event).where(Event.kind == "unsubscribed")).one()
    auth = event.data["authentication"]
    assert (auth["dkim"], auth["spf"], auth["dmarc"], len(auth["results"])) == ("pass", "fail", "fail", 2)
    assert event.data["review"] is True


def test_provider_names_and_fixes() -> None:
    assert [provider_of(d) for d in ("gmail.com", "outlook.de", "live.com", "aol.com", "me.com", "qq.com",
                                     "126.com", "buyer.example")] == [
        "Google", "Microsoft", "Microsoft", "Yahoo", "Apple", "Tencent", "NetEase", "buyer.example"]
    assert fix_for("5.7.1", "blocked using zen.spamhaus.org").topic == "blocklist"
    assert fix_for("5.7.1", "SPF check failed").topic == "authentication"
    assert fix_for("5.6.0", "").topic == "content"
    assert fix_for("5.7.1", "policy rejection", "554 5.7.1 Mail content denied: virus found").topic == "content"


def test_a_company_domain_is_named_by_its_provider_when_the_refusal_says_which() -> None:
    assert provider_for("licht-handel.example", status="5.7.515") == "Microsoft"
    assert provider_for("licht-handel.example", status="5.7.1",
                        diagnostic="550 5.7.1 rejected by mail-db3.protection.outlook.com") == "Microsoft"
    assert provider_for("textil.example", status="5.7.28", diagnostic="gsmtp") == "Google"
    assert provider_for("gmail.com", status="5.7.515") == "Google"  # the recipient's domain comes first
    assert provider_for("textil.example", status="5.7.1", diagnostic="blocked") == "textil.example"
