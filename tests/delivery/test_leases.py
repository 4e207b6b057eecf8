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
