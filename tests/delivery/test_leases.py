"""Leases, recovery and claim tokens: a dead worker's batch comes back, a lapsed claim is not sent twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends, new_claim_token, recover_expired_leases
from sendwell.delivery.deliverer import _mark_in_flight
from sendwell.delivery.planning import plan_campaign, queue_campaign
from tests.helpers import make_contact


def _queued(runtime, n: int) -> int:
    with transaction(runtime.factory) as s:
        for _ in range(n):
            make_contact(s)
        c = create_campaign(s, settings=runtime.settings, name="L", subject="s", html="<p>x</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        return c.id


def test_recovery_requeues_an_expired_batch_and_flags_only_the_mail_in_flight(runtime) -> None:
    campaign_id = _queued(runtime, 5)
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    with transaction(runtime.factory) as s:
        ids = claim_sends(s, campaign_id=campaign_id, now=past, lease=timedelta(minutes=10), token=new_claim_token())
    with runtime.engine.begin() as conn:
        assert _mark_in_flight(conn, ids[2], past, None, timedelta(minutes=10))  # the worker died inside this one
    with transaction(runtime.factory) as s:
        report = recover_expired_leases(s)
    assert report.requeued == {campaign_id: ids} and report.possibly_duplicated == [ids[2]]
    with transaction(runtime.factory) as s:
        rows = {r.id: r for r in s.scalars(select(Send))}
        assert recover_expired_leases(s).count == 0  # idempotent
    assert {r.state for r in rows.values()} == {"queued"}
    assert [i for i, r in rows.items() if r.possible_duplicate] == [ids[2]]
    assert all(r.claim_token is None and r.in_flight_at is None and r.lease_until is None for r in rows.values())


def test_a_worker_whose_claim_lapsed_does_not_send(runtime, smtp_server) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    campaign_id = _queued(runtime, 4)
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    slow_token = new_claim_token()
    with transaction(runtime.factory) as s:
        ids = claim_sends(s, campaign_id=campaign_id, now=past, lease=timedelta(minutes=10), token=slow_token)
    # The slow worker's lease lapses; recovery hands the batch to another worker, which claims it.
    with transaction(runtime.factory) as s:
        recover_expired_leases(s)
        other = claim_sends(s, campaign_id=campaign_id, token=new_claim_token())
    assert other == ids
    d = runtime.make_deliverer()
    try:
        counts = d.deliver(campaign_id, ids, token=slow_token)
    finally:
        d.transport.close()
    assert counts["sent"] == 0 and smtp_server.messages == []
    with transaction(runtime.factory) as s:
        assert {r.state for r in s.scalars(select(Send))} == {"sending"}  # still the other worker's


def test_a_claim_that_was_recovered_mid_batch_stops_at_the_next_mail(runtime, smtp_server) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    campaign_id = _queued(runtime, 3)
    token = new_claim_token()
    with transaction(runtime.factory) as s:
        ids = claim_sends(s, campaign_id=campaign_id, token=token)
    d = runtime.make_deliverer()

    def take_the_last_one() -> bool:
        # After the first mail, someone else holds the last one (its lease lapsed, it was re-claimed).
        with transaction(runtime.factory) as s:
            s.get(Send, ids[-1]).claim_token = "someone-else"
        return False

    d.should_stop = take_the_last_one
    try:
        counts = d.deliver(campaign_id, ids, token=token)
    finally:
        d.transport.close()
    assert counts["sent"] == 2 and counts["lost"] == 1
    assert len(smtp_server.messages) == 2


def test_queued_sends_count_as_lost_only_when_the_queue_is_dry_and_each_is_handed_over_once(runtime) -> None:
    from sendwell.delivery.claims import due_batches

    campaign_id = _queued(runtime, 4)
    lease = timedelta(seconds=30)
    later = datetime.now(timezone.utc) + timedelta(minutes=5)  # every queued send is older than a lease
    with transaction(runtime.factory) as s:
        ids = sorted(s.scalars(select(Send.id)))
        # The queue still holds jobs: a queued send is waiting its turn, not lost.
        assert due_batches(s, now=later, lease=lease, lost_queued=False) == []
        # The queue ran dry and they are still queued: their jobs were lost; hand them over once.
        assert due_batches(s, now=later, lease=lease) == [(campaign_id, ids)]
        assert due_batches(s, now=later + timedelta(seconds=1), lease=lease) == []
        # Nobody took them for a whole lease: handed over again.
        assert due_batches(s, now=later + lease + timedelta(seconds=1), lease=lease) == [(campaign_id, ids)]


def test_a_due_retry_is_handed_over_once_per_lease_even_while_the_queue_is_busy(runtime) -> None:
    from sqlalchemy import update

    from sendwell.delivery.claims import due_batches

    campaign_id = _queued(runtime, 3)
    now = datetime.now(timezone.utc)
    lease = timedelta(seconds=30)
    with transaction(runtime.factory) as s:
        ids = sorted(s.scalars(select(Send.id)))
        s.execute(update(Send).where(Send.id == ids[0]).values(state="deferred", updated_at=now,
                                                                retry_at=now + timedelta(seconds=5)))
        s.execute(update(Send).where(Send.id != ids[0]).values(updated_at=now))
    with transaction(runtime.factory) as s:
        assert due_batches(s, now=now + timedelta(seconds=1), lease=lease, lost_queued=False) == []  # not due yet
        assert due_batches(s, now=now + timedelta(seconds=6), lease=lease, lost_queued=False) == [(campaign_id, [ids[0]])]
        assert due_batches(s, now=now + timedelta(seconds=7), lease=lease, lost_queued=False) == []
        again = now + timedelta(seconds=6) + lease + timedelta(seconds=1)
        assert due_batches(s, now=again, lease=lease, lost_queued=False) == [(campaign_id, [ids[0]])]


def test_the_worker_scan_leaves_waiting_sends_alone_while_the_queue_holds_jobs(runtime) -> None:
    from sqlalchemy import update

    from sendwell.worker.queue import Queue

    campaign_id = _queued(runtime, 3)
    queue = Queue(runtime)
    with transaction(runtime.factory) as s:
        ids = sorted(s.scalars(select(Send.id)))
        s.execute(update(Send).values(updated_at=datetime.now(timezone.utc) - timedelta(hours=1)))
    queue.enqueue_batches(campaign_id, [ids])
    assert queue.recover()["due_batches"] == 0 and queue.pending() == 1
    queue.huey.flush()  # the job is lost (a flushed Redis): the next scan hands the sends over again
    assert queue.recover()["due_batches"] == 1 and queue.pending() == 1
    assert queue.recover()["due_batches"] == 0


# ---- recovery by owner: heartbeats and dead pids (sendwell.db.processes) ----

def _process(runtime, *, pid: int | None = None, host: str | None = None, seen_ago: float = 0.0,
             started: int | None = None) -> int:
    """A registered delivery process: this one by default, or another pid / host, last seen `seen_ago` s ago."""
    import dataclasses

    from sqlalchemy import update as sql_update

    from sendwell.db.models import DeliveryProcess
    from sendwell.db.processes import Identity, register

    me = Identity.current()
    ident = dataclasses.replace(me, pid=pid if pid is not None else me.pid, host=host or me.host,
                                pid_started=started if started is not None else (0 if pid is not None else me.pid_started))
    with runtime.engine.begin() as conn:
        process_id = register(conn, role="worker", me=ident)
        conn.execute(sql_update(DeliveryProcess).where(DeliveryProcess.id == process_id).values(
            last_seen=datetime.now(timezone.utc) - timedelta(seconds=seen_ago)))
    return process_id


def _claimed_by(runtime, campaign_id: int, owner: int, *, in_flight: int | None = None) -> list[int]:
    """Claim the campaign's queued sends for `owner` (a fresh 10-minute lease) and mark one in flight."""
    with transaction(runtime.factory) as s:
        ids = claim_sends(s, campaign_id=campaign_id, token=new_claim_token(owner))
    if in_flight is not None:
        with runtime.engine.begin() as conn:
            assert _mark_in_flight(conn, ids[in_flight], datetime.now(timezone.utc), None, timedelta(minutes=10))
    return ids


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()  # reaped: the pid is no longer running
    return proc.pid


def _registry(runtime) -> set[int]:
    from sendwell.db.models import DeliveryProcess

    with transaction(runtime.factory) as s:
        return set(s.scalars(select(DeliveryProcess.id)))


def test_a_dead_pid_on_this_machine_loses_its_claims_at_once(runtime) -> None:
    from sendwell.delivery.claims import recover_dead_owners

    campaign_id = _queued(runtime, 4)
    owner = _process(runtime, pid=_dead_pid())  # heartbeat fresh: only the pid tells it is dead
    ids = _claimed_by(runtime, campaign_id, owner, in_flight=1)
    with transaction(runtime.factory) as s:
        report = recover_dead_owners(s, timeout=timedelta(seconds=15))
    assert report.requeued == {campaign_id: ids} and report.possibly_duplicated == [ids[1]]
    with transaction(runtime.factory) as s:
        rows = list(s.scalars(select(Send)))
    assert {r.state for r in rows} == {"queued"} and [r.id for r in rows if r.possible_duplicate] == [ids[1]]
    assert owner not in _registry(runtime)  # buried
    with transaction(runtime.factory) as s:
        assert recover_dead_owners(s, timeout=timedelta(seconds=15)).count == 0


def test_a_reused_pid_does_not_pass_for_the_dead_process(runtime) -> None:
    import os

    from sendwell.delivery.claims import recover_dead_owners

    campaign_id = _queued(runtime, 2)
    # Our own pid, but another start time: the registered process died and the pid went to us.
    owner = _process(runtime, pid=os.getpid(), started=1)
    _claimed_by(runtime, campaign_id, owner)
    with transaction(runtime.factory) as s:
        assert recover_dead_owners(s, timeout=timedelta(seconds=15)).count == 2


def test_a_live_process_keeps_its_claims_and_a_silent_one_loses_them_after_the_timeout(runtime) -> None:
    from sendwell.delivery.claims import recover_dead_owners

    campaign_id = _queued(runtime, 6)
    live = _process(runtime)  # this very process, heartbeat fresh
    elsewhere = _process(runtime, pid=4242, host="worker-2.example", seen_ago=5)  # its pid cannot be looked at
    gone = 987654  # a claim whose process row was deleted (it exited cleanly, or was buried)
    with transaction(runtime.factory) as s:
        ids = sorted(s.scalars(select(Send.id)))
        for owner, pair in ((live, ids[:2]), (elsewhere, ids[2:4]), (gone, ids[4:])):
            claim_sends(s, campaign_id=campaign_id, send_ids=pair, token=new_claim_token(owner))
    with transaction(runtime.factory) as s:
        report = recover_dead_owners(s, timeout=timedelta(seconds=15))
    assert report.requeued == {campaign_id: ids[4:]}  # only the one that is gone
    with transaction(runtime.factory) as s:
        report = recover_dead_owners(s, timeout=timedelta(seconds=4))  # silent longer than this timeout
    assert report.requeued == {campaign_id: ids[2:4]}
    assert _registry(runtime) == {live}
    with transaction(runtime.factory) as s:
        states = dict(s.execute(select(Send.id, Send.state)).all())
    assert [states[i] for i in ids] == ["sending", "sending", "queued", "queued", "queued", "queued"]


def test_send_wait_takes_back_only_its_own_campaigns_dead_claims(runtime) -> None:
    from sendwell.delivery.claims import recover_dead_owners

    first, second = _queued(runtime, 2), _queued(runtime, 0)
    with transaction(runtime.factory) as s:
        make_contact(s)
        c = create_campaign(s, settings=runtime.settings, name="M", subject="s", html="<p>x</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        second = c.id
    dead = _process(runtime, pid=_dead_pid())
    _claimed_by(runtime, first, dead)
    _claimed_by(runtime, second, dead)
    with transaction(runtime.factory) as s:
        assert list(recover_dead_owners(s, timeout=timedelta(seconds=15), campaign_id=second).requeued) == [second]
    with transaction(runtime.factory) as s:
        assert list(recover_dead_owners(s, timeout=timedelta(seconds=15)).requeued) == [first]


def test_a_lost_job_is_handed_over_after_seconds_once_the_queue_is_dry(runtime) -> None:
    from sendwell.delivery.claims import due_batches

    campaign_id = _queued(runtime, 3)
    lease, lost_after = timedelta(minutes=10), timedelta(seconds=15)
    soon = datetime.now(timezone.utc) + timedelta(seconds=20)  # queued 20 s ago: far less than a lease
    with transaction(runtime.factory) as s:
        ids = sorted(s.scalars(select(Send.id)))
        assert due_batches(s, now=soon, lease=lease) == []  # by the lease alone: not yet
        assert due_batches(s, now=soon, lease=lease, lost_queued=False, lost_after=lost_after) == []  # queue busy
        assert due_batches(s, now=soon, lease=lease, lost_after=lost_after) == [(campaign_id, ids)]
        assert due_batches(s, now=soon + timedelta(seconds=1), lease=lease, lost_after=lost_after) == []


def test_the_worker_scan_recovers_a_dead_processes_batch_and_enqueues_it(runtime) -> None:
    from sendwell.worker.queue import Queue

    campaign_id = _queued(runtime, 3)
    ids = _claimed_by(runtime, campaign_id, _process(runtime, pid=_dead_pid()))
    queue = Queue(runtime)
    try:
        assert queue.recover()["recovered"] == 3 and queue.pending() == 1
    finally:
        queue.huey.flush()
    with transaction(runtime.factory) as s:
        assert {s.get(Send, i).state for i in ids} == {"queued"}
