"""The inbound SMTP listener (aiosmtpd): bounce, mailto-unsubscribe and reply addresses only."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.db.session import transaction
from sendwell.feedback.inbound import HostileMessage, InboundResult, check_structure, process_inbound, route_of

log = logging.getLogger(__name__)
# Bounces quote the original; 10 MiB is generous. Larger mail gets aiosmtpd's permanent 552.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


class FeedbackHandler:
    """aiosmtpd handler: refuses foreign recipients at RCPT, processes and commits each message at DATA."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self.results: list[InboundResult] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if route_of(address, self.settings) == "foreign":
            # Not an open relay: only our bounce / unsubscribe / reply domains are accepted.
            return "550 5.7.1 relaying denied: not a local address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            # The database work is blocking; keep the event loop free for other connections.
            results = await loop.run_in_executor(None, self.process, data, list(envelope.rcpt_tos))
        except HostileMessage as exc:
            # Permanent (RFC 3463 5.6.0, media error): a retry would fail the same way, so the
            # sender must bounce it rather than queue it for days.
            log.warning("inbound message refused: %s", exc)
            return f"554 5.6.0 message refused: {exc}"
        except Exception:
            log.exception("inbound message could not be processed")
            # RFC 5321 §4.2.1: a 4xx makes the sending MTA keep the message and retry; nothing is lost.
            return "451 4.3.0 temporary failure, try again later"
        self.results.extend(results)
        return "250 2.0.0 accepted"

    def process(self, raw: bytes, rcpt_to: list[str]) -> list[InboundResult]:
        """Process one message in its own transaction, committed before the 250 is sent.

        HostileMessage (before any database work) if its MIME structure is beyond any real mail.
        """
        check_structure(raw)
        with transaction(self.factory) as session:
            return process_inbound(session, raw=raw, rcpt_to=rcpt_to, settings=self.settings, source="smtp")


class FeedbackListener:
    """Start/stop the listener in a background thread; `with` does both."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, *, host: str | None = None,
                 port: int | None = None) -> None:
        self.handler = FeedbackHandler(factory, settings)
        self.host = host or settings.inbound_host
        self.port = port or settings.inbound_port
        self.controller = Controller(
            self.handler, hostname=self.host, port=self.port, decode_data=False,
            data_size_limit=MAX_MESSAGE_BYTES, server_hostname=settings.inbound_domain_list[0],
        )

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> FeedbackListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
