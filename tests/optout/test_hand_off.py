"""An opt-out that meets a mail in its SMTP hand-off answers only once the hand-off is over.

The deliverer no longer holds a lock during the SMTP exchange (optout/gate.py): the opt-out
sees the send's in-flight mark and its answer waits for the mail's result. Without that wait
the person's POST would return while their mail was still on its way out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import func, select, update

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Send, Suppression
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.optout import gate
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact, run_once
from tests.optout.conftest import u
from tests.worker import support


def _campaign(runtime, n: int) -> tuple[int, list[tuple[int, str]]]:
    with transaction(runtime.factory) as s:
        contacts = [(c.id, c.email) for c in (make_contact(s, country="DE") for _ in range(n))]
        campaign = create_campaign(s, settings=runtime.settings, name="Hand-off", subject="News", html="<p>Hi</p>",
                                   segment="region = eu")
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign)
        return campaign.id, contacts


def test_the_one_click_answer_waits_for_the_mail_being_handed_to_smtp(runtime, smtp_server, unused_port) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    campaign_id, contacts = _campaign(runtime, 3)
    target_id, target = contacts[1]
    entered, release = threading.Event(), threading.Event()
    arrived: dict[str, float] = {}
    original = smtp_server.handler.handle_DATA

    async def held_data(server, session, envelope):  # type: ignore[no-untyped-def]
        if envelope.rcpt_tos[0] == target:
            entered.set()
            while not release.is_set():  # the server takes its time over this one message
                await asyncio.sleep(0.01)
        reply = await original(server, session, envelope)
        arrived[envelope.rcpt_tos[0]] = time.monotonic()
        return reply

    smtp_server.handler.handle_DATA = held_data
    answered: dict[str, object] = {}

    with BackgroundServer(create_app(runtime, outbox=False), unused_port) as web:
        sender = threading.Thread(target=run_once, args=(runtime, campaign_id))
        sender.start()
        try:
            assert entered.wait(60), "the target's mail never reached DATA"

            def click() -> None:
                with httpx.Client(base_url=web.url, timeout=60) as client:
                    answered["response"] = client.post(u(runtime, target_id, campaign_id=campaign_id),
                                                       data={"List-Unsubscribe": "One-Click"})
                answered["at"] = time.monotonic()

            clicker = threading.Thread(target=click)
            clicker.start()
            support.wait_for(lambda: _suppressed(runtime), "the opt-out to be committed", timeout=60)
            # The opt-out is committed, but the mail is still in its SMTP transaction: no answer
            # yet. A POST that did not wait for the hand-off would answer within moments.
            clicker.join(0.5)
            assert clicker.is_alive(), "the POST returned while the person's mail was still being handed over"
        finally:
            release.set()
        clicker.join(60)
        sender.join(60)
    assert answered["response"].status_code == 200
    assert arrived[target] <= answered["at"]  # the mail was out before the answer, never after
    assert {email for _, email in contacts} == set(arrived)


def _suppressed(runtime) -> bool:
    with transaction(runtime.factory) as s:
        return bool(s.scalar(select(func.count()).select_from(Suppression)))


def _mark(runtime, campaign_id: int, contact_id: int, at: datetime) -> None:
    with transaction(runtime.factory) as s:
        s.execute(update(Send).where(Send.campaign_id == campaign_id, Send.contact_id == contact_id)
                  .values(state="sending", in_flight_at=at))


def _counting_reads(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    reads: list[int] = []
    real = gate._pending

    def counted(*args):  # type: ignore[no-untyped-def]
        reads.append(1)
        return real(*args)

    monkeypatch.setattr(gate, "_pending", counted)
    return reads


def test_a_mark_left_by_a_dead_worker_long_ago_is_not_waited_for(runtime, monkeypatch) -> None:
    campaign_id, [(contact_id, _)] = _campaign(runtime, 1)
    window = timedelta(seconds=30)
    _mark(runtime, campaign_id, contact_id, datetime.now(timezone.utc) - 2 * window)
    reads = _counting_reads(monkeypatch)
    gate.wait_for_hand_off(runtime.engine, contact_id, window=window)
    asyncio.run(gate.await_hand_off(runtime.engine, contact_id, window=window))
    assert len(reads) == 2  # one look each, no waiting


def test_a_fresh_mark_is_waited_for_until_it_is_older_than_the_window(runtime, monkeypatch) -> None:
    # A worker that dies mid-hand-off never clears its mark: the wait ends when the mark has
    # aged past the window (a live hand-off cannot take longer), not never.
    campaign_id, [(contact_id, _)] = _campaign(runtime, 1)
    window = timedelta(seconds=0.3)
    reads = _counting_reads(monkeypatch)
    for wait in (gate.wait_for_hand_off, lambda *a, **kw: asyncio.run(gate.await_hand_off(*a, **kw))):
        reads.clear()
        _mark(runtime, campaign_id, contact_id, datetime.now(timezone.utc))
        wait(runtime.engine, contact_id, window=window)
        assert len(reads) > 2  # it looked again and again while the mark was fresh
