"""A worker stopped in the middle of a 100,000-mail campaign: nobody is lost, duplicates are bounded.

Real `sendwell worker` subprocesses and a real SMTP server on loopback counting what it
received, on SQLite with the embedded queue (one worker) and on PostgreSQL with Redis (two
workers). SIGKILL: at most one duplicate per SMTP connection open at the kill, and every
duplicate is one recovery flagged. SIGTERM: no duplicate at all.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from sendwell.db.models import Contact, Send, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from sendwell.worker.queue import Queue
from tests.optout.conftest import u
from tests.reliability.conftest import (
    DEFAULT_RECOVERY,
    RECIPIENTS,
    THREADS,
    Fault,
    progress,
    record_figures,
    shape_settings,
)
from tests.worker import support

pytestmark = pytest.mark.slow


def _open_connections(port: int) -> int:
    """ESTABLISHED TCP connections to the server's port, from /proc/net/tcp (server side)."""
    count = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if int(local.split(":")[1], 16) == port and state == "01":
            count += 1
    return count


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_worker_stopped_mid_campaign_loses_nobody(shape, sig, tmp_path) -> None:
    runtime, queue, server, n_workers = shape
    support.seed_contacts(runtime, RECIPIENTS)
    started = time.monotonic()
    campaign_id = support.start_campaign(runtime, queue)
    env = support.worker_env(runtime.settings)
    log = tmp_path / "worker.log"
    workers = [support.start_worker(env, log) for _ in range(n_workers)]
    try:
        support.wait_for(lambda: server.received >= RECIPIENTS // 3, "a third of the mails", procs=workers,
                         timeout=1000,
                         describe=progress(runtime, campaign_id, server))
        open_at_kill = _open_connections(server.port)
        code = support.stop(workers[0], sig)
        received_at_stop = server.received
        if sig == signal.SIGTERM:
            assert code == 0, log.read_text()[-3000:]
            # A graceful stop leaves nothing claimed: each session finished its mail, the rest went back.
            assert support.states(runtime, campaign_id).get("sending", 0) == 0 or n_workers > 1
        assert received_at_stop < RECIPIENTS, "the stop came too late to test anything"
        workers[0] = support.start_worker(env, log)
        support.wait_for(lambda: support.campaign_finished(runtime, campaign_id), "the campaign to finish",
                         procs=workers, timeout=1000,
                         describe=progress(runtime, campaign_id, server))
    finally:
        for w in workers:
            support.stop(w, signal.SIGKILL)
    elapsed = time.monotonic() - started
    assert support.states(runtime, campaign_id) == {"sent": RECIPIENTS}
    counts = server.receipts()
    assert set(counts) == {f"buyer{n}@buyers.example" for n in range(RECIPIENTS)}, "a recipient got nothing"
    duplicated = {rcpt for rcpt, n in counts.items() if n > 1}
    with transaction(runtime.factory) as s:
        flagged = set(s.scalars(
            select(Contact.email).join(Send, Send.contact_id == Contact.id)
            .where(Send.campaign_id == campaign_id, Send.possible_duplicate.is_(True))))
    extra = sum(counts.values()) - RECIPIENTS
    record_figures(f"crash[{'postgresql+redis' if n_workers > 1 else 'sqlite'}-{sig.name}]",
                   recipients=RECIPIENTS, workers=n_workers, smtp_sessions_per_worker=THREADS,
                   received_at_stop=received_at_stop, open_connections_at_stop=open_at_kill,
                   missing=RECIPIENTS - len(counts), duplicates=extra, flagged_possible_duplicates=len(flagged),
                   seconds=round(elapsed, 1))
    if sig == signal.SIGTERM:
        assert duplicated == set() and flagged == set(), "a graceful stop must send each mail exactly once"
    else:
        assert extra <= min(open_at_kill, THREADS), (extra, open_at_kill)
        # Every duplicate was one of the mails recovery reported as possibly duplicated.
        assert duplicated <= flagged
        assert len(flagged) <= THREADS


def test_a_killed_workers_batches_resume_within_30_s_with_default_settings(default_shape, tmp_path) -> None:
    """SIGKILL with the default 600 s lease: its claims come back because its pid is dead, not by the lease.

    SQLite: the one worker is started again and takes them back at its first scan; PostgreSQL +
    Redis: the other worker's scan (every 5 s) does, without any restart.
    """
    runtime, queue, server, n_workers = default_shape
    support.seed_contacts(runtime, RECIPIENTS)
    campaign_id = support.start_campaign(runtime, queue)
    env = support.worker_env(runtime.settings)
    log = tmp_path / "worker.log"
    workers = [support.start_worker(env, log) for _ in range(n_workers)]
    try:
        support.wait_for(lambda: server.received >= RECIPIENTS // 3, "a third of the mails", procs=workers,
                         timeout=1000, describe=progress(runtime, campaign_id, server))
        open_at_kill = _open_connections(server.port)
        support.stop(workers[0], signal.SIGKILL)
        fault = Fault.now(runtime, campaign_id)
        if n_workers == 1:
            workers[0] = support.start_worker(env, log)
        else:
            workers.pop(0)
        resumed = fault.wait_resumed(runtime, campaign_id, procs=workers)
        support.wait_for(lambda: support.campaign_finished(runtime, campaign_id), "the campaign to finish",
                         procs=workers, timeout=1000, describe=progress(runtime, campaign_id, server))
        finished = time.monotonic() - fault.at
    finally:
        for w in workers:
            support.stop(w, signal.SIGKILL)
    counts = server.receipts()
    with transaction(runtime.factory) as s:
        flagged = set(s.scalars(
            select(Contact.email).join(Send, Send.contact_id == Contact.id)
            .where(Send.campaign_id == campaign_id, Send.possible_duplicate.is_(True))))
    extra = sum(counts.values()) - RECIPIENTS
    record_figures(f"crash-defaults[{'postgresql+redis' if n_workers > 1 else 'sqlite'}]",
                   recipients=RECIPIENTS, workers=n_workers, claimed_at_kill=len(fault.claimed),
                   resumed_seconds=round(resumed, 1), finished_seconds_after_kill=round(finished, 1),
                   missing=RECIPIENTS - len(counts), duplicates=extra, flagged_possible_duplicates=len(flagged),
                   **DEFAULT_RECOVERY)
    assert fault.claimed, "the kill came when nothing was claimed: nothing to recover"
    assert resumed < 30, f"sending resumed {resumed:.1f} s after the kill"
    assert support.states(runtime, campaign_id) == {"sent": RECIPIENTS}
    assert set(counts) == {f"buyer{n}@buyers.example" for n in range(RECIPIENTS)}, "a recipient got nothing"
    assert {rcpt for rcpt, n in counts.items() if n > 1} <= flagged
    assert extra <= min(open_at_kill, THREADS)


class _StallingHandler:
    """Takes every mail's DATA and never answers: each SMTP session stays inside its transaction."""

    async def handle_DATA(self, server, session, envelope) -> str:
        await asyncio.sleep(3600)
        return "250 2.0.0 queued"


def test_a_one_click_answers_within_2_s_when_the_worker_sending_to_that_person_was_killed_mid_mail(
        db_url, tmp_path) -> None:
    """A worker dies inside the SMTP transaction of a mail to the person who clicks: its in-flight
    mark stays behind (the lease is 10 minutes), and the opt-out must not wait for it."""
    port = free_port()
    controller = Controller(_StallingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        runtime = Runtime(shape_settings(db_url, tmp_path / "data", f"smtp://127.0.0.1:{port}", **DEFAULT_RECOVERY))
        queue = Queue(runtime)
        try:
            support.seed_contacts(runtime, 20)
            campaign_id = support.start_campaign(runtime, queue)
            worker = support.start_worker(support.worker_env(runtime.settings), tmp_path / "worker.log")
            try:
                support.wait_for(lambda: _in_flight(runtime), "a mail inside its SMTP transaction", procs=[worker])
            finally:
                support.stop(worker, signal.SIGKILL)
            contact_id = _in_flight(runtime)[0]
            with BackgroundServer(create_app(runtime, outbox=False), free_port()) as web:
                started = time.monotonic()
                response = httpx.post(web.url + u(runtime, contact_id, campaign_id=campaign_id),
                                      data={"List-Unsubscribe": "One-Click"}, timeout=300)
                answered = time.monotonic() - started
            with transaction(runtime.factory) as s:
                suppressed = s.scalar(select(func.count()).select_from(Suppression))
            record_figures("one-click-after-killed-worker", answered_seconds=round(answered, 3),
                           backend=db_url.split(":", 1)[0])
        finally:
            queue.huey.flush()
            runtime.dispose()
    finally:
        controller.stop()
    assert response.status_code == 200 and suppressed == 1
    assert answered < 2, f"the one-click answered after {answered:.2f} s"


def _in_flight(runtime) -> list[int]:
    with transaction(runtime.factory) as s:
        return list(s.scalars(select(Send.contact_id).where(Send.state == "sending", Send.in_flight_at.is_not(None))))
