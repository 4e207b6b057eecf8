"""A worker stopped in the middle of a 100,000-mail campaign: nobody is lost, duplicates are bounded.

Real `sendwell worker` subprocesses and a real SMTP server on loopback counting what it
received, on SQLite with the embedded queue (one worker) and on PostgreSQL with Redis (two
workers). SIGKILL: at most one duplicate per SMTP connection open at the kill, and every
duplicate is one recovery flagged. SIGTERM: no duplicate at all.
"""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import select

from sendwell.db.models import Contact, Send
from sendwell.db.session import transaction
from tests.reliability.conftest import RECIPIENTS, THREADS, progress, record_figures
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
