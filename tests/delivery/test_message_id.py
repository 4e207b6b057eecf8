"""A send keeps one Message-ID across retries and crash recovery, so a duplicate can be recognised."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy

from typing import Any

import pytest
from sqlalchemy import select, update

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery import deliverer as deliverer_module
from sendwell.delivery.claims import recover_expired_leases
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.runner import run_campaign
from sendwell.mail.mime import make_message_id
from tests.delivery.faults import FaultyHandler, FaultySMTPServer
from tests.helpers import make_contact

EMAIL = "dup@buyers.example"


class _Crash(Exception):
    """The worker dies after the server took the mail and before the result was stored."""


@dataclass
class SeeingHandler(FaultyHandler):
    """Keeps every message that reached DATA, also those it then answers with a fault."""

    seen: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen.append(envelope.original_content or envelope.content)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def server(runtime):
    """The loopback server, and the runtime's SMTP URL pointed at it."""
    s = FaultySMTPServer()
    s.handler = s.controller.handler = SeeingHandler(None)
    runtime.replace_settings(runtime.settings.replace(smtp_url=s.url, smtp_timeout=5))
    with s:
        yield s


@pytest.fixture
def rt(runtime, server):
    return runtime


def _campaign(runtime) -> int:
    with transaction(runtime.factory) as s:
        make_contact(s, email=EMAIL)
        c = create_campaign(s, settings=runtime.settings, name="M", subject="Hi", html="<p>Hi</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        return c.id


def _run(runtime, campaign_id: int) -> dict:
    d = runtime.make_deliverer()
    try:
        return run_campaign(runtime.factory, d, campaign_id=campaign_id)
    finally:
        d.transport.close()


def _send(runtime) -> Send:
    with transaction(runtime.factory) as s:
        return s.scalars(select(Send)).one()


def _received_ids(server) -> list[str]:
    return [message_from_bytes(data, policy=policy.default)["Message-ID"] for data in server.handler.seen]


def test_the_message_id_is_fixed_per_send_and_install() -> None:
    a = make_message_id(7, "sender.example", "key-one")
    assert a == make_message_id(7, "sender.example", "key-one")
    assert a.startswith("<7.") and a.endswith("@sender.example>")
    # Not guessable from the send id: another install (another secret key) makes another tag.
    assert a != make_message_id(7, "sender.example", "key-two")
    assert a != make_message_id(8, "sender.example", "key-one")


def test_a_deferred_send_is_retried_with_the_same_message_id(rt, server) -> None:
    # The whole message reached the server, which answered 451: the retry is a second copy.
    server.handler.data_faults[EMAIL] = ["451 4.3.0 try again later"]
    campaign_id = _campaign(rt)
    _run(rt, campaign_id)
    first = _send(rt)
    assert first.state == "deferred" and first.message_id
    with transaction(rt.factory) as s:
        s.execute(update(Send).values(retry_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert _run(rt, campaign_id)["states"]["sent"] == 1
    ids = _received_ids(server)
    assert len(ids) == 2 and ids[0] == ids[1] == first.message_id == _send(rt).message_id


def test_a_send_recovered_after_a_crash_is_resent_with_the_same_message_id(rt, server, monkeypatch) -> None:
    campaign_id = _campaign(rt)

    def crash(*args, **kwargs):
        raise _Crash

    with monkeypatch.context() as m:
        m.setattr(deliverer_module, "_record", crash)
        with pytest.raises(_Crash):
            _run(rt, campaign_id)
    crashed = _send(rt)
    assert crashed.state == "sending" and crashed.in_flight_at is not None and crashed.message_id is None
    # The lease runs out; recovery queues the send again, flagged as a possible duplicate.
    with transaction(rt.factory) as s:
        s.execute(update(Send).values(lease_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
        assert recover_expired_leases(s).possibly_duplicated == [crashed.id]
    assert _run(rt, campaign_id)["states"]["sent"] == 1
    ids = _received_ids(server)
    sent = _send(rt)
    assert sent.possible_duplicate and sent.attempts == 1 and len(server.messages) == 2
    assert len(ids) == 2 and ids[0] == ids[1] == sent.message_id
