"""A real SMTP server on loopback (aiosmtpd) that keeps every message as an .eml file.

Used by `sendwell demo` and by the tests as the receiving side; it can also answer with
chosen SMTP replies for given recipients, to exercise deferrals and bounces, and hold mail
at a gate so that a test decides exactly when a message in flight is answered.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    path: Path | None


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass
class CaptureHandler:
    """Keeps each message; `gate` (open unless cleared) holds DATA before the message is kept.

    While the gate is closed, a message that reaches DATA waits with its sender's SMTP
    transaction open (`held` is set), and is kept and answered once the gate opens again.
    `close_after`, when set, closes the gate by itself once that many messages were kept.
    """

    directory: Path | None
    replies: dict[str, str] = field(default_factory=dict)  # rcpt -> "450 4.2.1 try later"
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event = field(default_factory=_open_gate)
    held: threading.Event = field(default_factory=threading.Event)
    close_after: int | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        reply = self.replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        while not self.gate.is_set():
            self.held.set()
            # The server's event loop serves every session: poll rather than block it.
            await asyncio.sleep(0.002)
        data = envelope.original_content or envelope.content
        path = None
        with self.lock:
            if self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"{len(self.messages) + 1:06d}.eml"
                path.write_bytes(data)
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), data, path))
            if self.close_after is not None and len(self.messages) >= self.close_after:
                self.gate.clear()
                self.close_after = None
        return "250 2.0.0 queued"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CaptureSMTPServer:
    """Start/stop an aiosmtpd server on 127.0.0.1 in a background thread."""

    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        self.handler = CaptureHandler(directory)
        self.port = port or free_port()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port,
            # Campaign mails are larger than aiosmtpd's 32 MiB default is not a concern;
            # 8-bit data must be accepted as sent.
            decode_data=False,
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def __enter__(self) -> CaptureSMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
