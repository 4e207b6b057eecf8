"""Leases, recovery and claim tokens: a dead worker's batch comes back, a lapsed claim is not sent twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.service import (
    _mark_in_flight,
    claim_sends,
    create_campaign,
    new_claim_token,
    plan_campaign,
    queue_campaign,
    recover_expired_leases,
)
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
    runtime.settings.smtp_url = smtp_server.url
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
    runtime.settings.smtp_url = smtp_server.url
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
