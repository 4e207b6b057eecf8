"""A worker killed in the middle of a 10,000-mail campaign: nobody is lost, duplicates are bounded.

Real `sendwell worker` subprocesses, a real SMTP server on loopback counting its receipts, on
SQLite with the embedded queue (one worker) and on PostgreSQL with Redis (two workers).
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.worker.queue import Queue
from tests.conftest import make_settings
from tests.worker import support

RECIPIENTS = 10_000
THREADS = 4

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


@pytest.fixture
def shape(request, db_url, tmp_path):
    """The embedded shape on SQLite, or PostgreSQL + Redis with two workers."""
    with __import__("sendwell.demo.smtp_server", fromlist=["CaptureSMTPServer"]).CaptureSMTPServer() as server:
        redis = db_url.startswith("postgresql")
        settings = make_settings(
            tmp_path / "data", database_url=db_url, smtp_url=server.url,
            queue_url="redis://127.0.0.1:6379/0" if redis else "", queue_name=support.unique_name(),
            lease_seconds=8, recovery_interval=0.5, smtp_concurrency=THREADS, batch_size=100,
        )
        runtime = Runtime(settings)
        queue = Queue(runtime)
        yield runtime, queue, server, (2 if redis else 1)
        queue.huey.flush()
        runtime.dispose()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_worker_stopped_mid_campaign_loses_nobody(shape, sig, tmp_path) -> None:
    runtime, queue, server, n_workers = shape
    support.seed_contacts(runtime, RECIPIENTS)
    campaign_id = support.start_campaign(runtime, queue)
    env = support.worker_env(runtime.settings)
    log = tmp_path / "worker.log"
    workers = [support.start_worker(env, log) for _ in range(n_workers)]
    try:
        support.wait_for(lambda: len(server.messages) >= RECIPIENTS // 3, "a third of the mails", procs=workers)
        open_at_kill = _open_connections(server.port)
        code = support.stop(workers[0], sig)
        received_at_stop = len(server.messages)
        if sig == signal.SIGTERM:
            assert code == 0, log.read_text()[-3000:]
            # A graceful stop leaves nothing claimed: each session finished its mail, the rest went back.
            assert support.states(runtime, campaign_id).get("sending", 0) == 0 or n_workers > 1
        assert received_at_stop < RECIPIENTS, "the stop came too late to test anything"
        workers[0] = support.start_worker(env, log)
        support.wait_for(lambda: support.campaign_finished(runtime, campaign_id), "the campaign to finish",
                         procs=workers)
    finally:
        for w in workers:
            support.stop(w, signal.SIGKILL)
    assert support.states(runtime, campaign_id) == {"sent": RECIPIENTS}
    counts = support.receipts(server)
    assert set(counts) == {f"buyer{n}@buyers.example" for n in range(RECIPIENTS)}, "a recipient got nothing"
    duplicated = {rcpt for rcpt, n in counts.items() if n > 1}
    with transaction(runtime.factory) as s:
        flagged = {email for email, in s.execute(
            select(__import__("sendwell.db.models", fromlist=["Contact"]).Contact.email)
            .join(Send, Send.contact_id == __import__("sendwell.db.models", fromlist=["Contact"]).Contact.id)
            .where(Send.campaign_id == campaign_id, Send.possible_duplicate.is_(True)))}
    if sig == signal.SIGTERM:
        assert duplicated == set() and flagged == set(), "a graceful stop must send each mail exactly once"
    else:
        extra = sum(counts.values()) - RECIPIENTS
        assert extra <= min(open_at_kill, THREADS), (extra, open_at_kill)
        # Every duplicate was one of the mails recovery reported as possibly duplicated.
        assert duplicated <= flagged
        assert len(flagged) <= THREADS
