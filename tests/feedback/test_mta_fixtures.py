"""Hand-written bounces and vacation notices in the shapes real MTAs and providers send, beyond the corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendwell.feedback.classify import classify_file, classify_message

MTA = Path(__file__).resolve().parent / "fixtures" / "mta"

# file: (kind, recipients, status, sender fault, delay)
EXPECTED = {
    "postfix_user_unknown.eml": ("hard", ("einkauf@leuchten-mueller.example",), "5.1.1", False, False),
    "postfix_delayed.eml": ("soft", ("slow@far-away.example",), "4.4.1", False, True),
    "exim_no_such_user.eml": ("hard", ("buyer@importhaus.example",), "5.1.1", False, False),
    "exim_mailbox_full.eml": ("soft", ("full@distri.example",), "5.2.2", False, False),
    "exim_delay_warning.eml": ("soft", ("waiting@slow.example",), "4.7.1", False, True),
    "qmail_no_mailbox.eml": ("hard", ("gone@oldhost.example",), "5.1.1", False, False),
    "sendmail_host_unknown.eml": ("hard", ("someone@no-such-domain-xyz.example",), "5.1.2", False, False),
    "courier_user_unknown.eml": ("hard", ("nouser@courier.example",), "5.0.0", False, False),
    "domino_not_listed.eml": ("hard", ("j.doe@domino.example",), None, False, False),
    "o365_5_7_515.eml": ("soft", ("reader@outlook.example",), "5.7.515", True, False),
    "o365_recipient_not_found.eml": ("hard", ("ex.employee@contoso.example",), "5.1.10", False, False),
    "outlookcom_mailbox_unavailable.eml": ("hard", ("closed.account@hotmail.example",), "5.5.0", False, False),
    "gmail_address_not_found.eml": ("hard", ("nobody.here@gmail.example",), "5.1.1", False, False),
    "gmail_rejected_as_spam.eml": ("soft", ("buyer@gmail.example",), "5.7.1", True, False),
    "yahoo_no_account.eml": ("hard", ("lost.buyer@yahoo.example",), None, False, False),
    "de_unzustellbar.eml": ("hard", ("niemand@firma.example",), None, False, False),
    "fr_echec_remise.eml": ("hard", ("acheteur@societe.example",), None, False, False),
    "es_buzon_lleno.eml": ("soft", ("compras@empresa.example",), None, False, False),
    # "收件人不存在：550 Mailbox not found": a bare 550 with no X.1.x status and no RCPT stage is
    # unconfirmed (RFC 5321 §4.2.3: 550 also covers policy refusals), soft until the streak says dead.
    "zh_tuixin.eml": ("soft", ("nobody@qq.example",), None, False, False),
    "exchange_ooo_de.eml": ("auto_reply", ("k.weber@grosshandel.example",), None, False, False),
    "ooo_fr.eml": ("auto_reply", ("m.dubois@eclairage.example",), None, False, False),
    "ooo_es.eml": ("auto_reply", ("cruiz@iluminacion.example",), None, False, False),
    "ooo_zh.eml": ("auto_reply", ("wang@dengju.example",), None, False, False),
}


def test_every_fixture_is_labelled() -> None:
    assert {p.name for p in MTA.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mta_fixture(name: str) -> None:
    [result] = classify_file(MTA / name)
    got = (result.kind, result.recipients, result.status, result.is_sender_fault, result.is_delay)
    assert got == EXPECTED[name], result


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_line_endings_do_not_change_the_verdict(name: str) -> None:
    lf = (MTA / name).read_bytes().replace(b"\r\n", b"\n")
    assert classify_message(lf.replace(b"\n", b"\r\n")) == classify_message(lf)


def test_verp_token_from_delivered_to() -> None:
    [result] = classify_file(MTA / "postfix_user_unknown.eml")
    assert result.verp_token == "101.abcdefghij"
    assert result.original_message_id == "<101.a1b2c3d4e5f6@bright-lighting.example>"


@pytest.mark.parametrize(("code", "message", "expected"), [
    (550, "5.1.1 <x@example.org>: Recipient address rejected: User unknown", ("hard", False, False)),
    (552, "5.2.2 Mailbox full", ("soft", False, False)),
    (550, "5.7.515 Access denied, sending domain does not meet the required authentication level",
     ("soft", True, False)),
    (421, "4.7.0 Try again later, closing connection", ("soft", True, True)),
    (451, "4.3.0 Temporary lookup failure", ("soft", False, True)),
    # RFC 5321's generic 554 says nothing about the mailbox: not enough to suppress anyone.
    (554, "Transaction failed", ("soft", False, False)),
    (250, "2.0.0 OK", ("other", False, False)),
])
def test_synchronous_smtp_replies(code: int, message: str, expected: tuple) -> None:
    from sendwell.feedback.classify import classify_smtp_reply

    result = classify_smtp_reply("X@Example.org", code, message)
    assert (result.kind, result.is_sender_fault, result.is_delay) == expected
    assert result.recipients == ("x@example.org",) and result.reply_code == str(code)
