"""Inbound adapters for real: the SMTP listener over smtplib, maildir and mbox ingestion, the CLI."""

from __future__ import annotations

import json
import mailbox
import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from sendwell.cli.main import cli, register_commands
from sendwell.db.models import Event, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.feedback.listener import FeedbackListener
from sendwell.feedback.sources import SourceError, envelope_recipients, open_source, parse_imap_url
from sendwell.optout.tokens import make_mailto_token
from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.feedback.factories import DOMAIN, arf, dsn, make_sent, reply, verp
from tests.helpers import make_contact

register_commands()


def _world(runtime):
    """Three contacts with a sent mail each, committed so other connections see them."""
    with transaction(runtime.factory) as session:
        hard, angry, leaver = (make_contact(session) for _ in range(3))
        sends = {c.email: make_sent(session, c) for c in (hard, angry, leaver)}
        info = {
            "hard": (hard.email, hard.email_hash, verp(runtime.settings, sends[hard.email])),
            "angry": (angry.email, angry.email_hash, sends[angry.email].message_id),
            "leaver": (leaver.email, leaver.email_hash,
                       make_mailto_token(runtime.settings.secret_keys, leaver.id, sends[leaver.email].campaign_id)),
        }
    return info


def _reasons(runtime) -> dict[str, str]:
    with transaction(runtime.factory) as session:
        return dict(session.execute(select(Suppression.email_hash, Suppression.reason)).all())


def test_listener_over_real_smtp(runtime) -> None:
    w = _world(runtime)
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            client.sendmail("", [w["hard"][2]], dsn(rcpt=w["hard"][0], status="5.1.1"))
            client.sendmail("", [f"bounce@{DOMAIN}"], arf(rcpt=w["angry"][0], message_id=w["angry"][2]))
            client.sendmail(w["leaver"][0], [f"unsubscribe+{w['leaver'][2]}@{DOMAIN}"],
                            reply(sender=w["leaver"][0], subject="unsubscribe", body=""))
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("x@example.org", ["someone@elsewhere.example"], b"Subject: relay?\n\nhi\n")
            assert refused.value.recipients["someone@elsewhere.example"][0] == 550
        assert [r.action for r in listener.handler.results] == ["hard_bounce", "complaint", "unsubscribed"]
    reasons = _reasons(runtime)
    assert reasons == {w["hard"][1]: "hard_bounce", w["angry"][1]: "complaint", w["leaver"][1]: "unsubscribe"}


def test_listener_answers_4xx_when_the_database_fails(runtime, monkeypatch) -> None:
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        def broken(*args, **kwargs):
            raise RuntimeError("database down")

        monkeypatch.setattr(listener.handler, "process", broken)
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPDataError) as error:
                client.sendmail("", [f"bounce@{DOMAIN}"], dsn(rcpt="a@example.org", status="5.1.1"))
    assert error.value.smtp_code == 451



def _nested_multipart(depth: int) -> bytes:
    """A message whose multiparts nest `depth` levels deep, each level one part inside the last."""
    head = [f"Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n" for i in range(depth)]
    tail = [f"\n--b{i}--\n" for i in reversed(range(depth))]
    return (f"From: mailer-daemon@elsewhere.example\nTo: bounce@{DOMAIN}\nSubject: nested\nMIME-Version: 1.0\n"
            + "".join(head) + "Content-Type: text/plain\n\nhello\n" + "".join(tail)).replace("\n", "\r\n").encode()


@pytest.mark.parametrize("hostile", ["nested", "deeper_than_the_parser", "parts"])
def test_listener_refuses_hostile_mime_for_good(runtime, hostile) -> None:
    """A message nested too deep or with too many parts gets a permanent 5xx, not a 4xx retried forever."""
    w = _world(runtime)
    if hostile != "parts":
        message = _nested_multipart(200 if hostile == "nested" else 2000)
    else:
        parts = "".join("--b\nContent-Type: text/plain\n\nx\n" for _ in range(5000))
        message = (f"From: a@elsewhere.example\nTo: bounce@{DOMAIN}\nSubject: many\nMIME-Version: 1.0\n"
                   f"Content-Type: multipart/mixed; boundary=\"b\"\n\n{parts}--b--\n").replace("\n", "\r\n").encode()
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=30) as client:
            with pytest.raises(smtplib.SMTPDataError) as error:
                client.sendmail("", [f"bounce@{DOMAIN}"], message)
            # The connection stays usable: an ordinary bounce after it is still accepted.
            client.sendmail("", [w["hard"][2]], dsn(rcpt=w["hard"][0], status="5.1.1"))
        assert [r.action for r in listener.handler.results] == ["hard_bounce"]
    assert error.value.smtp_code == 554 and b"5.6.0" in error.value.smtp_error, error.value
    assert _reasons(runtime) == {w["hard"][1]: "hard_bounce"}


def test_listener_refuses_oversize_mail_for_good(runtime) -> None:
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=30) as client:
            with pytest.raises(smtplib.SMTPResponseException) as error:
                client.sendmail("", [f"bounce@{DOMAIN}"], b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 11_000)
    assert error.value.smtp_code == 552


def test_listener_accepts_mime_nested_a_few_levels(runtime) -> None:
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            assert client.sendmail("", [f"bounce@{DOMAIN}"], _nested_multipart(10)) == {}
        assert [r.route for r in listener.handler.results] == ["bounce"]


def _mail_set(w) -> list[bytes]:
    hard = dsn(rcpt=w["hard"][0], status="5.1.1")
    # A local delivery agent records the envelope recipient (the VERP address) as Delivered-To.
    hard = f"Delivered-To: {w['hard'][2]}\n".encode() + hard
    complaint = arf(rcpt=w["angry"][0], message_id=w["angry"][2])
    leave = reply(sender=w["leaver"][0], subject="Re: LED panels", body="Bitte abmelden.\n",
                  to=f"sales@{DOMAIN}")
    ooo = reply(sender="someone@example.net", subject="Automatische Antwort: LED",
                body="Ich bin bis Montag nicht im Büro.", extra="Auto-Submitted: auto-replied\n")
    return [hard, complaint, leave, ooo]


@pytest.fixture
def cli_env(settings) -> dict[str, str]:
    return {
        "SENDWELL_DATA_DIR": str(settings.data_dir),
        "SENDWELL_DATABASE_URL": settings.database_url,
        "SENDWELL_SECRET_KEY": TEST_SECRET,
        "SENDWELL_HASH_PEPPER": TEST_PEPPER,
        "SENDWELL_FROM": f"Bright <sales@{DOMAIN}>",
    }


def _ingest(env, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["feedback", "ingest", "--json", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_ingest_a_maildir_then_again(runtime, cli_env, tmp_path) -> None:
    w = _world(runtime)
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in _mail_set(w):
        box.add(raw)
    first = _ingest(cli_env, str(tmp_path / "Maildir"))
    assert first == {"source": "maildir", "messages": 4, "actions": {
        "hard_bounce": 1, "complaint": 1, "unsubscribed": 1, "unmatched": 1}}
    assert not list((tmp_path / "Maildir" / "new").iterdir())
    assert len(list((tmp_path / "Maildir" / "cur").iterdir())) == 4
    reasons = _reasons(runtime)
    assert reasons == {w["hard"][1]: "hard_bounce", w["angry"][1]: "complaint", w["leaver"][1]: "unsubscribe"}
    with transaction(runtime.factory) as session:
        before = session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    again = _ingest(cli_env, str(tmp_path / "Maildir"))
    assert again["actions"] == {"duplicate": 2, "already_unsubscribed": 1, "unmatched": 1}
    with transaction(runtime.factory) as session:
        assert session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) == before


def test_ingest_an_mbox(runtime, cli_env, tmp_path) -> None:
    w = _world(runtime)
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    for raw in _mail_set(w):
        box.add(raw)
    box.close()
    result = _ingest(cli_env, str(tmp_path / "bounces.mbox"))
    assert result["source"] == "mbox" and result["messages"] == 4
    assert set(_reasons(runtime).values()) == {"hard_bounce", "complaint", "unsubscribe"}


def test_ingest_refuses_hostile_mime_and_goes_on(runtime, cli_env, tmp_path) -> None:
    w = _world(runtime)
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(_nested_multipart(2000))
    for raw in _mail_set(w):
        box.add(raw)
    result = _ingest(cli_env, str(tmp_path / "Maildir"))
    assert result["messages"] == 5 and result["actions"]["refused_hostile"] == 1
    assert result["actions"]["hard_bounce"] == 1  # the real reports after it were still processed


def test_ingest_errors_are_one_line(cli_env, tmp_path) -> None:
    (tmp_path / "notmaildir").mkdir()
    for args in (["nowhere"], [str(tmp_path / "notmaildir")], [], ["x", "--imap", "imaps://a:b@h/INBOX"]):
        result = CliRunner().invoke(cli, ["feedback", "ingest", *args], env=cli_env)
        assert result.exit_code != 0
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_envelope_recipient_of_stored_mail(settings) -> None:
    s = settings.model_copy(update={"from_": f"x <sales@{DOMAIN}>"})
    raw = f"Delivered-To: bounce+5.abc@{DOMAIN}\nDelivered-To: me@isp.example\nTo: x@y.example\n\nhi".encode()
    assert envelope_recipients(raw, s) == [f"bounce+5.abc@{DOMAIN}"]
    assert envelope_recipients(f"To: Sales <SALES@{DOMAIN}>\n\nhi".encode(), s) == [f"sales@{DOMAIN}"]
    assert envelope_recipients(b"To: someone@else.example\n\nhi", s) == [f"bounce@{DOMAIN}"]


def test_imap_url_parsing() -> None:
    assert parse_imap_url("imaps://bounces%40x.org:p%3Ass@mail.x.org/Bounces") == (
        True, "mail.x.org", 993, "bounces@x.org", "p:ss", "Bounces")
    assert parse_imap_url("imap://u:p@localhost:1143")[1:3] == ("localhost", 1143)
    with pytest.raises(SourceError):
        parse_imap_url("http://x")


def test_unreachable_imap_server_is_a_clear_error(settings) -> None:
    _, items = open_source(f"imap://u:p@127.0.0.1:{free_port()}/INBOX", settings)
    with pytest.raises(SourceError, match="cannot log in"):
        next(items)


def _wait_for_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "listener exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("listener did not start")


def test_listen_command(runtime, cli_env) -> None:
    w = _world(runtime)
    port = free_port()
    env = {**os.environ, **cli_env}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("sendwell")), "feedback", "listen", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, proc)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("", [w["hard"][2]], dsn(rcpt=w["hard"][0], status="5.1.1"))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert _reasons(runtime) == {w["hard"][1]: "hard_bounce"}
    assert b"Listening on smtp://127.0.0.1:" in proc.stderr.read()
