"""An aiosmtpd server on loopback with scripted faults per recipient: replies, disconnects, delays."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from sendwell.demo.smtp_server import CaptureHandler, free_port


@dataclass
class FaultyHandler(CaptureHandler):
    # rcpt -> list of actions, used one per DATA: "disconnect", "sleep:<s>", "451 …", or "ok"
    data_faults: dict[str, list[str]] = field(default_factory=dict)
    sessions: int = 0
    pipelining: bool = False  # advertise RFC 2920 (aiosmtpd reads pipelined commands line by line)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0].lower()
        actions = self.data_faults.get(rcpt)
        action = actions.pop(0) if actions else "ok"
        if action == "disconnect":
            # The whole message arrived but the server drops the line before its reply:
            # RFC 5321 §4.1.1.4 says the mail is not accepted until the reply.
            server.transport.close()
            return "421 closing"
        if action.startswith("sleep:"):
            await asyncio.sleep(float(action.split(":", 1)[1]))
        elif action != "ok":
            return action
        return await super().handle_DATA(server, session, envelope)


class FaultySMTPServer:
    def __init__(self, *, pipelining: bool = False, **controller_kw: Any) -> None:
        self.handler = FaultyHandler(None, pipelining=pipelining)
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, decode_data=False,
                                     **controller_kw)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Any]:
        return self.handler.messages

    def __enter__(self) -> FaultySMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
