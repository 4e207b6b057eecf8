"""A session the server closed while idle is checked and replaced before the next mail, not deferred."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.mail.transport import SmtpTransport
from tests.delivery.faults import FaultyHandler, FaultySMTPServer
from tests.helpers import make_contact

IDLE_TIMEOUT = 0.6  # the server closes a session quiet for this long (aiosmtpd's own timeout)


@dataclass
class NoopCountingHandler(FaultyHandler):
    noops: int = 0

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        self.noops += 1
        return "250 OK"


@pytest.fixture(params=[False, True], ids=["lockstep", "pipelining"])
def server(request):
    s = FaultySMTPServer(pipelining=request.param, timeout=IDLE_TIMEOUT)
    s.handler = s.controller.handler = NoopCountingHandler(None, pipelining=request.param)
    with s:
        yield s


def _send(transport: SmtpTransport, n: int) -> str:
    return transport.send("bounce@sender.example", f"rcpt{n}@buyers.example",
                          f"Subject: {n}\r\n\r\nHello {n}\r\n".encode()).status


def test_back_to_back_mails_send_no_noop_and_a_quiet_session_is_checked_once(server) -> None:
    transport = SmtpTransport(server.url, timeout=5, idle_check=IDLE_TIMEOUT / 3)
    try:
        assert [_send(transport, n) for n in range(3)] == ["sent"] * 3
        assert server.handler.noops == 0  # the hot path only reads the clock
        time.sleep(IDLE_TIMEOUT / 2)  # quiet past the check, within the server's timeout
        assert _send(transport, 3) == "sent"
    finally:
        transport.close()
    assert server.handler.noops == 1 and server.handler.sessions == 1  # checked, alive, reused


def test_the_idle_check_replaces_a_session_the_server_closed(server) -> None:
    transport = SmtpTransport(server.url, timeout=5, idle_check=IDLE_TIMEOUT / 3)
    try:
        assert _send(transport, 0) == "sent"
        time.sleep(IDLE_TIMEOUT * 2)  # the server has closed the session by now
        assert _send(transport, 1) == "sent"
    finally:
        transport.close()
    assert server.handler.sessions == 2  # the NOOP found the session closed: a new one was opened
    assert [m.rcpt_tos for m in server.messages] == [["rcpt0@buyers.example"], ["rcpt1@buyers.example"]]


def test_a_session_found_closed_at_mail_from_is_replaced_once_and_the_mail_sent(server) -> None:
    # No idle check (threshold never reached): the closed session shows up at MAIL FROM,
    # before the server accepted anything, so the mail is sent again on a new session.
    transport = SmtpTransport(server.url, timeout=5, idle_check=3600)
    try:
        assert _send(transport, 0) == "sent"
        time.sleep(IDLE_TIMEOUT * 2)
        assert _send(transport, 1) == "sent"
    finally:
        transport.close()
    assert server.handler.noops == 0 and server.handler.sessions == 2
    assert len(server.messages) == 2


def test_a_disconnect_after_the_message_is_still_temporary_and_not_resent(server) -> None:
    # Past MAIL FROM the server may have the message: that one is deferred, never retried at once.
    server.handler.data_faults["rcpt1@buyers.example"] = ["disconnect"]
    transport = SmtpTransport(server.url, timeout=5, idle_check=3600)
    try:
        assert _send(transport, 0) == "sent"
        assert _send(transport, 1) == "temporary"
    finally:
        transport.close()
    assert server.handler.sessions == 1 and len(server.messages) == 1


def test_the_first_mail_after_a_quiet_spell_is_sent_on_its_first_attempt(runtime, server) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=server.url, smtp_timeout=5))
    with transaction(runtime.factory) as s:
        make_contact(s, email="first@buyers.example")
        make_contact(s, email="later@buyers.example")
        c = create_campaign(s, settings=runtime.settings, name="Idle", subject="Hi", html="<p>Hi</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        campaign_id = c.id
    with transaction(runtime.factory) as s:
        first, later = s.scalars(select(Send.id).order_by(Send.id)).all()
        s.execute(Send.__table__.update().values(state="sending"))
    d = runtime.make_deliverer()
    d.transport.idle_check = IDLE_TIMEOUT / 3
    try:
        assert d.deliver(campaign_id, [first])["sent"] == 1
        time.sleep(IDLE_TIMEOUT * 2)  # a quiet spell: the server closes the idle session
        assert d.deliver(campaign_id, [later])["sent"] == 1
    finally:
        d.transport.close()
    with transaction(runtime.factory) as s:
        rows = s.scalars(select(Send).order_by(Send.id)).all()
        assert [(r.state, r.attempts, r.retry_at) for r in rows] == [("sent", 1, None), ("sent", 1, None)]
    assert server.handler.sessions == 2
