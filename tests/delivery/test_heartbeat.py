"""The registry of delivery processes, and the opt-out gate that asks it whether a sender is alive."""

from __future__ import annotations

import os
import socket
import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update

from sendwell.db.models import DeliveryProcess, Send
from sendwell.db.processes import EXITED, GONE, SILENT, Heartbeat, Identity, owner_of, running, verdict
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends, new_claim_token
from sendwell.delivery.deliverer import _mark_in_flight
from sendwell.optout import gate
from tests.delivery.test_leases import _dead_pid, _process, _queued


def _row(runtime, process_id: int) -> DeliveryProcess | None:
    with transaction(runtime.factory) as s:
        row = s.get(DeliveryProcess, process_id)
        if row is not None:
            s.expunge(row)
        return row


def test_a_process_registers_beats_and_unregisters(runtime) -> None:
    ran = threading.Event()
    hb = Heartbeat.start(runtime.engine, role="send-wait", interval=0.05)
    hb.after_beat.append(ran.set)
    try:
        row = _row(runtime, hb.id)
        assert (row.host, row.pid, row.role) == (socket.gethostname(), os.getpid(), "send-wait")
        first = row.last_seen
        assert ran.wait(30)  # a beat reached the database, then the callbacks ran
        assert _row(runtime, hb.id).last_seen > first
    finally:
        hb.stop()
    assert _row(runtime, hb.id) is None  # a clean exit leaves no row


def test_a_process_buried_while_cut_off_registers_again_under_its_id(runtime) -> None:
    hb = Heartbeat(runtime.engine, role="worker", interval=60)
    try:
        with runtime.engine.begin() as conn:
            conn.execute(delete(DeliveryProcess).where(DeliveryProcess.id == hb.id))
        hb.beat()
        assert _row(runtime, hb.id).pid == os.getpid()
    finally:
        hb.stop()


def test_the_verdicts() -> None:
    me = Identity.current()
    now = datetime.now(timezone.utc)
    timeout = timedelta(seconds=15)

    class Row:
        host, pid, boot_id, pid_namespace, pid_started = me.host, me.pid, me.boot_id, me.pid_namespace, me.pid_started
        last_seen = now

    assert verdict(None, now=now, timeout=timeout, me=me) == GONE
    assert verdict(Row, now=now, timeout=timeout, me=me) is None
    Row.pid = _dead_pid()
    assert verdict(Row, now=now, timeout=timeout, me=me) == EXITED
    Row.host, Row.last_seen = "worker-2.example", now - timeout - timedelta(seconds=1)
    assert verdict(Row, now=now, timeout=timeout, me=me) == SILENT  # another machine: only the heartbeat tells
    assert running(os.getpid(), me.pid_started) and not running(os.getpid(), me.pid_started + 1)
    assert owner_of(new_claim_token(17)) == 17 and owner_of(new_claim_token()) is None
    assert len(new_claim_token(10**12)) <= 32  # fits sends.claim_token


def _in_flight(runtime, owner: int) -> int:
    """A campaign of one, claimed by `owner`, its mail in flight; the contact's id."""
    campaign_id = _queued(runtime, 1)
    with transaction(runtime.factory) as s:
        [send_id] = claim_sends(s, campaign_id=campaign_id, token=new_claim_token(owner))
    with runtime.engine.begin() as conn:
        assert _mark_in_flight(conn, send_id, datetime.now(timezone.utc))
    with transaction(runtime.factory) as s:
        return s.get(Send, send_id).contact_id


def test_the_opt_out_does_not_wait_for_a_sender_that_died_mid_mail(runtime) -> None:
    contact_id = _in_flight(runtime, _process(runtime, pid=_dead_pid()))
    window = gate.hand_off_window(30)
    assert not gate._pending(runtime.engine, contact_id, window)  # killed mid-mail: its mark is not waited for


def test_the_opt_out_waits_for_a_live_sender_until_its_heartbeat_goes_silent(runtime) -> None:
    owner = _process(runtime, pid=4242, host="worker-2.example")
    contact_id = _in_flight(runtime, owner)
    window = gate.hand_off_window(30)
    assert gate._pending(runtime.engine, contact_id, window)
    with runtime.engine.begin() as conn:
        conn.execute(update(DeliveryProcess).where(DeliveryProcess.id == owner).values(
            last_seen=datetime.now(timezone.utc) - timedelta(seconds=20)))
    assert gate._pending(runtime.engine, contact_id, window, timedelta(seconds=30))
    assert not gate._pending(runtime.engine, contact_id, window, timedelta(seconds=15))


def test_the_wait_for_a_live_but_slow_sender_is_bounded(runtime) -> None:
    # A live sender on another machine inside a slow SMTP transaction: the answer goes after
    # the budget even though the hand-off is still under way (optout/gate.py says why).
    contact_id = _in_flight(runtime, _process(runtime, pid=4242, host="worker-2.example"))
    window = gate.hand_off_window(30)
    gate.wait_for_hand_off(runtime.engine, contact_id, window=window, budget=0.2)
    import asyncio

    asyncio.run(gate.await_hand_off(runtime.engine, contact_id, window=window, budget=0.2))
    assert gate._pending(runtime.engine, contact_id, window)  # it returned while the hand-off went on
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Send.state).where(Send.contact_id == contact_id)) == "sending"
