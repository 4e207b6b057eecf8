"""The database or the queue restarted in the middle of a campaign: the campaign still finishes.

PostgreSQL restarted (every connection cut) while two workers send; Redis restarted (every
queued job lost) while two workers send. Afterwards every recipient has their mail, every
send is `sent`, and the only duplicates are mails recovery flagged as possibly duplicated,
at most one per SMTP session that was open. With the default settings (a 600 s lease, scans
every 5 s, heartbeats every 2 s) sending resumes within 30 s of the restart: no claim made
before it is still held then, and mail is flowing again.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from sendwell.db.migrate import upgrade
from sendwell.db.models import Contact, Send
from sendwell.db.session import make_engine, transaction
from sendwell.runtime import Runtime
from sendwell.worker.queue import Queue
from tests.reliability.conftest import (
    DEFAULT_RECOVERY,
    RECIPIENTS,
    THREADS,
    ArrivalServer,
    Fault,
    record_figures,
    shape_settings,
)
from tests.reliability.servers import PrivatePostgres, PrivateRedis
from tests.worker import support

pytestmark = pytest.mark.slow

MAILS = max(1000, RECIPIENTS // 10)
WORKERS = 2


def _run_through_a_restart(runtime: Runtime, queue: Queue, server: ArrivalServer, restart, log: Path,
                           name: str) -> None:
    support.seed_contacts(runtime, MAILS)
    campaign_id = support.start_campaign(runtime, queue)
    env = support.worker_env(runtime.settings)
    workers = [support.start_worker(env, log) for _ in range(WORKERS)]
    started = time.monotonic()
    try:
        # Every worker is up before the fault: one still starting when the server goes down exits
        # at once with "cannot open the database", which is what it should do, but not this test.
        support.wait_for(lambda: log.read_text(errors="replace").count("Huey consumer started") >= WORKERS,
                         "every worker to start", procs=workers, timeout=300)
        support.wait_for(lambda: server.received >= MAILS // 3, "a third of the mails", procs=workers, timeout=900)
        at_restart = server.received
        fault = Fault.now(runtime, campaign_id)
        restart()
        restart_took = time.monotonic() - fault.at
        runtime.engine.dispose()  # this process's pooled connections died with the server, too
        resumed = fault.wait_resumed(runtime, campaign_id, procs=workers)
        support.wait_for(lambda: support.campaign_finished(runtime, campaign_id), "the campaign to finish",
                         procs=workers, timeout=900)
        finished = time.monotonic() - fault.at
    finally:
        for w in workers:
            support.stop(w, signal.SIGKILL)
    counts = server.receipts()
    with transaction(runtime.factory) as s:
        flagged = set(s.scalars(select(Contact.email).join(Send, Send.contact_id == Contact.id)
                                .where(Send.campaign_id == campaign_id, Send.possible_duplicate.is_(True))))
    duplicated = {rcpt for rcpt, n in counts.items() if n > 1}
    extra = sum(counts.values()) - MAILS
    record_figures(name, mails=MAILS, workers=WORKERS, received_at_restart=at_restart,
                   restart_seconds=round(restart_took, 2), missing=MAILS - len(counts), duplicates=extra,
                   flagged_possible_duplicates=len(flagged), seconds=round(time.monotonic() - started, 1),
                   resumed_seconds_after_restart=round(resumed, 1), finished_seconds_after_restart=round(finished, 1),
                   **DEFAULT_RECOVERY)
    assert resumed < 30, f"sending resumed {resumed:.1f} s after the restart began"
    assert support.states(runtime, campaign_id) == {"sent": MAILS}
    assert set(counts) == {f"buyer{n}@buyers.example" for n in range(MAILS)}, "a recipient got nothing"
    assert at_restart < MAILS, "the restart came too late to test anything"
    assert duplicated <= flagged, "a mail went out twice without recovery flagging it"
    assert extra <= WORKERS * THREADS


def test_postgresql_restarted_mid_campaign(tmp_path) -> None:
    pg = PrivatePostgres()
    pg.start()
    try:
        engine = make_engine(pg.url)
        upgrade(engine)
        engine.dispose()
        with ArrivalServer() as server:
            settings = shape_settings(pg.url, tmp_path / "data", server.url,
                                      queue_url="redis://127.0.0.1:6379/0", **DEFAULT_RECOVERY)
            runtime = Runtime(settings)
            queue = Queue(runtime)
            try:
                _run_through_a_restart(runtime, queue, server, pg.restart, tmp_path / "worker.log",
                                       "postgresql-restart")
            finally:
                queue.huey.flush()
                runtime.dispose()
    finally:
        pg.stop()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_redis_restarted_mid_campaign_loses_its_jobs_and_recovery_requeues_them(db_url, tmp_path) -> None:
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    try:
        with ArrivalServer() as server:
            runtime = Runtime(shape_settings(db_url, tmp_path / "data", server.url, queue_url=redis.url,
                                             **DEFAULT_RECOVERY))
            queue = Queue(runtime)
            try:
                _run_through_a_restart(runtime, queue, server, redis.restart, tmp_path / "worker.log",
                                       "redis-restart")
            finally:
                runtime.dispose()
    finally:
        redis.stop()
