"""A bounce is hard only where the report confirms the address is dead: one small message per rule.

Each rule keeps a live buyer from being suppressed for good on an ambiguous report; the
soft-bounce streak still suppresses a really dead address after a few sends.
"""

from __future__ import annotations

import pytest

from sendwell.feedback.classify import (
    Classification,
    classify_message,
    classify_smtp_reply,
)

RCPT = "buyer@importer.example"


def _dsn(status: str, diag: str, notice: str = "Your message could not be delivered.") -> Classification:
    """An RFC 3464 report for RCPT with a chosen human-readable part."""
    raw = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.sender.example>\n"
        "To: bounce@bright-lighting.example\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\n{notice}\n\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.sender.example\n\n"
        f"Final-Recipient: rfc822; {RCPT}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: {diag}\n\n"
        "--B--\n"
    )
    return classify_message(raw.encode())


def _plain(body: str) -> Classification:
    """A bounce in prose only (no delivery-status part)."""
    raw = (
        "From: MAILER-DAEMON@mx.sender.example (Mail Delivery System)\n"
        "To: bounce@bright-lighting.example\n"
        "Subject: Undelivered Mail Returned to Sender\n\n"
        f"{body}\n"
    )
    return classify_message(raw.encode())


# Microsoft 5.1.351: "Remote server returned unknown recipient or mailbox unavailable -> <reply>"
# wraps whatever the next server answered; only that quoted reply is evidence.
MS = "smtp;550 5.1.351 Remote server returned unknown recipient or mailbox unavailable -> "


@pytest.mark.parametrize(("remote", "kind", "category"), [
    ("550 : User unknown", "soft", "soft"),  # the reply names no address and no stage
    (f"550 5.1.1 <{RCPT}>: Recipient address rejected: User unknown", "hard", "hard"),
    ("550 Requested action not taken: mailbox unavailable;Reject due to policy restrictions", "soft", "block"),
])
def test_microsoft_5_1_351_is_judged_by_the_quoted_reply(remote: str, kind: str, category: str) -> None:
    notice = ("Your message couldn't be delivered. It appears that the email address wasn't found at the "
              "destination domain, or the recipient's mailbox is unavailable.")
    result = _dsn("5.1.351", MS + remote, notice)
    assert (result.kind, result.category, result.recipients) == (kind, category, (RCPT,)), result


def test_microsoft_5_1_351_without_a_quoted_reply_is_not_hard() -> None:
    result = _dsn("5.1.351", "smtp;550 5.1.351 Remote server returned unknown recipient or mailbox unavailable")
    assert result.kind == "soft", result


def test_microsoft_own_recipient_lookup_stays_hard() -> None:
    result = _dsn("5.1.10", "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup")
    assert result.kind == "hard", result


# A local delivery program's exit status (Postfix "x-unix", "Command output:") is not the mail
# system's knowledge of the mailbox, even where Postfix maps EX_NOUSER onto 5.1.1.
def test_a_local_delivery_program_failure_is_soft_even_under_5_1_1() -> None:
    diag = 'x-unix; procmail: Couldn\'t create "/var/spool/mail/buyer" id: buyer: No such user'
    assert _dsn("5.1.1", diag).kind == "soft"
    # the same status and words from an SMTP server are hard
    assert _dsn("5.1.1", "smtp; 550 5.1.1 No such user").kind == "hard"


def test_command_output_in_a_prose_bounce_is_soft() -> None:
    body = (f"<{RCPT}>: user unknown. Command output: maildrop: Unable to create a dot-lock at "
            "/home/buyer/Maildir. No such user")
    assert _plain(body).kind == "soft"


# A bare reply code with "user unknown" words and no addressing status (X.1.x): RFC 5321 §4.2.3
# gives 550 to policy refusals too; only a refusal of RCPT TO (§3.3) ties the words to the address.
@pytest.mark.parametrize(("status", "diag"), [
    ("5.0.0", f"smtp; 550 <{RCPT}>: User unknown"),
    ("5.0.0", f"smtp; 550 Unknown user {RCPT}"),
    ("5.0.0", "smtp; 550 Requested action not taken: no such user here"),
    # X.3.x names the mail system, not the address (RFC 3463 §3.4)
    ("5.0.0", f"smtp; 5.3.0 - Other mail system problem 550-'Unknown user {RCPT}'"),
    # X.0.0 with no SMTP reply at all: the reporter itself declined to name a cause
    ("5.0.0", "The email account that you tried to reach does not exist."),
])
def test_user_unknown_words_without_status_or_stage_are_soft(status: str, diag: str) -> None:
    result = _dsn(status, diag)
    assert (result.kind, result.recipients) == ("soft", (RCPT,)), result


@pytest.mark.parametrize("notice", [
    f"<{RCPT}>: host mx.importer.example[192.0.2.9] said: 550 <{RCPT}>: User unknown (in reply to RCPT TO command)",
    f"<{RCPT}>:\n192.0.2.9 does not like recipient.\nRemote host said: 550 <{RCPT}>: User unknown",
    "Status: 5.0.0 (Remote SMTP server has rejected address)",
    f"SMTP error from remote mail server after RCPT TO:<{RCPT}>: 550 User unknown",
])
def test_the_same_words_in_reply_to_rcpt_to_are_hard(notice: str) -> None:
    assert _dsn("5.0.0", f"smtp; 550 <{RCPT}>: User unknown", notice).kind == "hard"


def test_an_addressing_status_confirms_the_words() -> None:
    assert _dsn("5.1.1", f"smtp; 550 <{RCPT}>: User unknown").kind == "hard"
    assert _dsn("5.0.0", f"smtp; 550 5.1.1 <{RCPT}>: User unknown").kind == "hard"


def test_a_prose_bounce_with_a_bare_550_and_no_stage_is_soft() -> None:
    body = f"<{RCPT}>: host mx.importer.example[192.0.2.9] said: 550 <{RCPT}>: User unknown"
    assert _plain(body).kind == "soft"
    assert _plain(body + " (in reply to RCPT TO command)").kind == "hard"


def test_a_report_without_any_code_is_the_mailbox_systems_own_statement() -> None:
    body = f"Your message was not delivered to:\n\n  {RCPT}\n\nbecause:\n\n  User buyer not listed in Domino Directory"
    assert _plain(body).kind == "hard"


def test_yahoo_documented_no_account_reply_is_hard_even_after_data() -> None:
    # Yahoo answers unknown users after DATA and documents the reply as "user does not exist".
    notice = ("... while talking to mta6.am0.yahoodns.net.:\n>>> DATA\n"
              f"<<< 554 delivery error: dd This user doesn't have a yahoo.com account ({RCPT}) [0]\n"
              "554 5.0.0 Service unavailable")
    diag = f"SMTP; 554 delivery error: dd This user doesn't have a yahoo.com account ({RCPT}) [0]"
    assert _dsn("5.0.0", diag, notice).kind == "hard"
    # other receivers' "user unknown" after DATA is a filter's answer
    assert _dsn("5.0.0", f"smtp; 550 Unknown user {RCPT}", ">>> DATA\n<<< 550 Unknown user").kind == "soft"


def test_the_no_account_sentence_without_yahoos_prefix_is_not_enough_to_suppress() -> None:
    # The same sentence with no code, no stage and no "delivery error: dd": a mail system that
    # also uses it to refuse senders the recipient filters. Only Yahoo's documented form is hard.
    body = (f"Unable to deliver message to the following address(es).\n\n<{RCPT}>:\n"
            f"This user doesn't have a importer.example account ({RCPT}) [-9]\n")
    assert _plain(body).kind == "soft"
    assert _plain(body.replace("This user", "554 delivery error: dd This user")).kind == "hard"


def test_our_own_session_bare_550_is_soft_and_5_1_1_hard() -> None:
    assert classify_smtp_reply(RCPT, 550, "No such user here").kind == "soft"
    assert classify_smtp_reply(RCPT, 550, "5.1.1 <x@example.org>: Recipient address rejected: User unknown").kind == "hard"
