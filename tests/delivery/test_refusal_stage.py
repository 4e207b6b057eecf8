"""A refusal in our own SMTP session names the command it answered, so the classifier can tell
an unknown address (refused at RCPT TO) from a filter that refused the message (after DATA)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sendwell.feedback.classify import classify_smtp_reply
from sendwell.mail.transport import SmtpTransport
from tests.delivery.faults import FaultyHandler, FaultySMTPServer

BARE_UNKNOWN = "550 No such user here"  # no enhanced status code: only the stage confirms it


@dataclass
class RefusingHandler(FaultyHandler):
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address.startswith("gone@"):
            return BARE_UNKNOWN
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture(params=[False, True], ids=["lockstep", "pipelining"])
def server(request):
    s = FaultySMTPServer(pipelining=request.param)
    s.handler = s.controller.handler = RefusingHandler(None, pipelining=request.param)
    s.handler.data_faults["filtered@buyers.example"] = [BARE_UNKNOWN]
    with s:
        yield s


def _send(server, rcpt: str):
    transport = SmtpTransport(server.url, timeout=5)
    try:
        return transport.send("bounce@sender.example", rcpt, b"Subject: hi\r\n\r\nHello\r\n")
    finally:
        transport.close()


def test_a_bare_user_unknown_at_rcpt_is_a_hard_bounce(server) -> None:
    outcome = _send(server, "gone@buyers.example")
    assert outcome.status == "permanent" and outcome.code == 550
    assert "in reply to RCPT TO command" in outcome.message
    assert classify_smtp_reply("gone@buyers.example", outcome.code, outcome.message).kind == "hard"


def test_the_same_words_after_data_are_not_a_dead_address(server) -> None:
    outcome = _send(server, "filtered@buyers.example")
    assert outcome.status == "permanent" and outcome.code == 550
    assert "in reply to end of DATA command" in outcome.message
    assert classify_smtp_reply("filtered@buyers.example", outcome.code, outcome.message).kind != "hard"
