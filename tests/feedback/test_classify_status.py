"""The classifier reads the RFC 3463 status first, then the wording: one small message per case, per format."""

from __future__ import annotations

import json
from email.header import Header

import pytest

from sendwell.feedback.classify import (
    CATEGORIES,
    Classification,
    classify_message,
    classify_provider_json,
    classify_smtp_reply,
    coarse_kind,
)
from tests.feedback.factories import arf, dsn

RCPT = "buyer@importer.example"


def _dsn(status: str, diag: str, action: str = "failed") -> Classification:
    return classify_message(dsn(rcpt=RCPT, status=status, diag=diag, action=action))


def _plain(body: str, subject: str = "Mail delivery failed: returning message to sender") -> Classification:
    raw = (
        "From: Mail Delivery System <Mailer-Daemon@mx.sender.example>\n"
        "To: bounce@bright-lighting.example\n"
        f"Subject: {subject}\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
        f"{body}\n"
    )
    return classify_message(raw.encode())


@pytest.mark.parametrize(("status", "diag", "category"), [
    # X.1.x addressing (RFC 3463 §3.2)
    ("5.1.1", "smtp; 550 5.1.1 <buyer@importer.example>: Recipient address rejected", "hard"),
    ("5.1.2", "smtp; 550 5.1.2 Host unknown", "hard"),
    ("5.1.3", "smtp; 501 5.1.3 Bad recipient address syntax", "hard"),
    ("5.1.10", "smtp; 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "hard"),
    ("5.1.8", "smtp; 553 5.1.8 Sender address domain does not exist", "block"),
    # Microsoft's 5.1.351 wraps the next server's reply: with none quoted there is no evidence
    ("5.0.0", "smtp; 550 5.1.351 Remote server returned unknown recipient", "soft"),
    ("5.1.351", ("smtp; 550 5.1.351 Remote server returned unknown recipient or mailbox unavailable -> 550 5.1.1 "
                 "<buyer@importer.example>: Recipient address rejected: User unknown"), "hard"),
    # X.2.x mailbox (§3.3)
    ("5.2.2", "smtp; 552 5.2.2 Mailbox full", "soft"),
    ("5.2.3", "smtp; 552 5.2.3 Message length exceeds administrative limit", "soft"),
    ("5.2.1", "smtp; 550 5.2.1 The email account that you tried to reach is disabled", "soft"),
    ("5.2.1", "smtp; 550 5.2.1 <buyer@importer.example>... User unknown", "hard"),
    # X.3.x system (§3.4)
    ("5.3.2", "smtp; 553 5.3.2 System not accepting network messages", "soft"),
    ("5.3.4", "smtp; 552 5.3.4 Message too big for system", "soft"),
    # X.4.x routing (§3.5)
    ("5.4.4", "smtp; 550 5.4.4 Unable to route", "hard"),
    ("5.4.4", "x-postfix; Name service error for name=importer.example type=MX: Host not found, try again",
     "soft"),
    ("4.4.7", "smtp; 451 4.4.7 Delivery expired (message too old)", "soft"),
    ("5.4.1", "smtp; 550 5.4.1 Recipient address rejected: Access denied", "hard"),
    # X.6.x content (§3.7)
    ("5.6.0", "smtp; 550 5.6.0 Message content rejected", "block"),
    # X.7.x security and policy (§3.8): the words decide between policy, relaying and dead users
    ("5.7.1", "smtp; 554 5.7.1 Message rejected as spam", "block"),
    ("5.7.1", "smtp; 554 5.7.1 <buyer@importer.example>: Relay access denied", "soft"),
    ("5.7.1", "smtp; 550 5.7.1 No such user", "hard"),
    ("5.7.1", "smtp; 550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org", "block"),
    # Provider extensions
    ("5.7.515", "smtp; 550 5.7.515 Access denied, sending domain does not meet the required authentication level",
     "block"),
    ("5.7.708", "smtp; 550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP", "block"),
    ("5.7.26", "smtp; 550 5.7.26 This mail is unauthenticated", "block"),
    ("5.7.28", "smtp; 550 5.7.28 Our system has detected an unusual rate of unsolicited mail", "block"),
    ("5.7.1", "smtp; 553 5.7.1 [TSS09] All messages from 192.0.2.1 will be permanently deferred", "block"),
    # Generic status: the wording decides, and without evidence of a dead address it is not hard
    ("5.0.0", "smtp; 554 Transaction failed", "soft"),
    ("5.0.0", "smtp; 550 Mailbox unavailable or access denied, blacklisted sender IP", "block"),
    # RFC 5321 §4.2.3: a bare 550 also covers policy refusals; words alone, with no RCPT stage, stay soft
    ("5.0.0", "smtp; 550 Requested action not taken: no such user here", "soft"),
    ("5.0.0", "smtp; 550 Requested action not taken: no such user here (in reply to RCPT TO command)", "hard"),
])
def test_dsn_status_first(status: str, diag: str, category: str) -> None:
    result = _dsn(status, diag)
    assert result.category == category, result
    assert result.kind == coarse_kind(category)
    assert result.recipients == (RCPT,)
    assert result.is_sender_fault is (category == "block")


def test_dsn_delayed_and_delivered_categories() -> None:
    delayed = _dsn("4.4.1", "smtp; 421 4.4.1 Connection timed out", action="delayed")
    assert (delayed.category, delayed.kind, delayed.is_delay) == ("delay", "soft", True)
    delivered = _dsn("2.0.0", "smtp; 250 2.0.0 OK", action="delivered")
    assert (delivered.category, delivered.kind) == ("delivered", "other")


def test_a_user_unknown_answered_to_data_is_a_filter_not_a_dead_address() -> None:
    body = (
        "----- Transcript of session follows -----\n"
        "... while talking to mx.importer.example.:\n>>> DATA\n"
        f"<<< 550 Unknown user {RCPT}\n"
    )
    assert _plain(body).category == "soft"


@pytest.mark.parametrize(("wording", "category"), [
    ("550 Benutzer unbekannt", "hard"),
    ("550 Destinataire inconnu", "hard"),
    ("550 Usuario desconocido", "hard"),
    ("550 Usuário desconhecido", "hard"),
    ("550 Нет такого пользователя", "hard"),
    ("550 用户不存在", "hard"),
    ("550 收件人不存在", "hard"),
    ("550 收件人不存在，邮件被拒绝", "hard"),
    ("550 帐号不存在", "hard"),
    ("550 宛先不明のため配送できません", "hard"),
    ("552 Postfach voll", "soft"),
    ("552 邮箱已满", "soft"),
    ("550 Your IP 192.0.2.1 is listed on a DNS blocklist", "block"),
    ("550 Message rejected: SPF check failed", "block"),
    ("550 Sender reputation too low", "block"),
    ("550 Administrative prohibition", "soft"),
])
def test_plain_bounce_wording_in_several_languages(wording: str, category: str) -> None:
    body = (
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its recipients.\n\n"
        # Exim names the command a refusal answered (RFC 5321 §3.3: RCPT TO is where an address is refused)
        f"  {RCPT}\n    host mx.importer.example [192.0.2.9]\n"
        f"    SMTP error from remote mail server after RCPT TO:<{RCPT}>: {wording}\n"
    )
    result = _plain(body)
    assert result.category == category, result
    assert result.recipients == (RCPT,)


def test_arf_opt_out_is_an_unsubscribe_and_abuse_a_complaint() -> None:
    opt_out = classify_message(arf(rcpt=RCPT, feedback_type="opt-out"))
    assert (opt_out.category, opt_out.kind, opt_out.recipients) == ("unsubscribe", "complaint", (RCPT,))
    abuse = classify_message(arf(rcpt=RCPT))
    assert (abuse.category, abuse.kind) == ("complaint", "complaint")
    auth = classify_message(arf(rcpt=RCPT, feedback_type="auth-failure"))
    assert (auth.category, auth.kind) == ("other", "other")


@pytest.mark.parametrize(("headers", "subject", "body"), [
    ("Auto-Submitted: auto-replied\n", "Re: LED panels", "I will read your message later."),
    ("X-Autoreply: yes\n", "Re: LED panels", "Thanks."),
    ("", "Abwesenheitsnotiz: LED panels", "Ich bin nicht im Büro und bin ab Montag zurück."),
    ("", "Réponse automatique : LED panels", "Je suis absent du bureau jusqu'au 3 mars."),
    ("", "自动回复: LED panels", "我正在休假，回来后回复您。"),
    ("", "自動応答: LED panels", "ただいま不在にしております。戻り次第ご連絡いたします。"),
    ("", "Автоответ: LED panels", "Я в отпуске до 10 марта."),
    ("", "Resposta automática: LED panels", "Estou fora do escritório até segunda-feira."),
    ("Precedence: bulk\n", "[#48213] Request received: LED panels",
     "Your request has been received; ticket number 48213. We will respond within one business day."),
])
def test_rfc_3834_auto_replies(headers: str, subject: str, body: str) -> None:
    raw = (
        f"From: Karl Weber <k.weber@grosshandel.example>\nTo: sales@bright-lighting.example\n{headers}"
        f"Subject: {Header(subject, 'utf-8').encode()}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
    )
    result = classify_message(raw.encode())
    assert (result.category, result.kind) == ("auto_reply", "auto_reply")
    assert result.recipients == ("k.weber@grosshandel.example",)


def test_challenge_response_is_its_own_category() -> None:
    raw = (
        "From: Spam Guard <guard@filter.example>\nTo: sales@bright-lighting.example\n"
        "Subject: Please confirm your message\n\n"
        "Your message is waiting. To get on my approved senders list, verify that you are a person:\n"
        "https://filter.example/confirm?id=1\n"
    )
    result = classify_message(raw.encode())
    assert (result.category, result.kind) == ("challenge", "other")


def test_provider_events_carry_categories() -> None:
    ses = {
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [
            {"emailAddress": RCPT, "status": "5.7.1", "diagnosticCode": "smtp; 550 5.7.1 blocked using spamhaus"}]},
        "mail": {"messageId": "x"},
    }
    [block] = classify_provider_json(ses)
    assert (block.category, block.kind, block.is_sender_fault) == ("block", "soft", True)
    delivery = {"notificationType": "Delivery", "delivery": {"recipients": [RCPT], "smtpResponse": "250 ok"},
                "mail": {"messageId": "x"}}
    assert classify_provider_json(delivery)[0].category == "delivered"
    sendgrid = json.loads(json.dumps([{"event": "deferred", "email": RCPT, "response": "451 4.7.1 try later"}]))
    assert classify_provider_json(sendgrid)[0].category == "delay"


@pytest.mark.parametrize(("code", "message", "category", "delay"), [
    (550, "5.1.1 <x@example.org>: Recipient address rejected: User unknown", "hard", False),
    (450, "4.1.1 <x@example.org>: Recipient address rejected: User unknown", "soft", True),
    (421, "4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume", "block", True),
    (550, "5.7.606 Access denied, banned sending IP", "block", False),
])
def test_smtp_replies_in_our_own_session(code: int, message: str, category: str, delay: bool) -> None:
    result = classify_smtp_reply("x@example.org", code, message)
    assert (result.category, result.is_delay) == (category, delay)


def test_the_json_line_keeps_the_coarse_kind_and_adds_the_category() -> None:
    line = _dsn("5.7.1", "smtp; 554 5.7.1 rejected as spam").to_json("a.eml")
    assert (line["kind"], line["category"]) == ("soft", "block")
    assert all(coarse_kind(c) in {"hard", "soft", "complaint", "auto_reply", "other"} for c in CATEGORIES)


def test_a_classification_built_from_a_kind_alone_derives_its_category() -> None:
    assert Classification(kind="soft", is_sender_fault=True).category == "block"
    assert Classification(kind="soft", is_delay=True).category == "delay"
    assert Classification(kind="hard").category == "hard"
