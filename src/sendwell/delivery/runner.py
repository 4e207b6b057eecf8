"""The in-process runner behind `send --wait`: claim and deliver batches until none is left.

The runner registers as a delivery process (sendwell.db.processes) and heartbeats while it
runs, so a `send --wait` killed mid-campaign has its claims taken back by the next run at once
(same machine, dead pid) or by any worker within the heartbeat timeout. It takes back its
campaign's dead-owner sends when it starts and whenever it runs out of work, waits for sends
another live process holds while that process makes progress, and returns the campaign's status
with `left`: what is still unsent and why (`leftovers`), which the CLI turns into its exit code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sendwell.db.models import Campaign, CampaignStatus, DeliveryProcess, Send, SendState
from sendwell.db.processes import Heartbeat, Identity, clock, describe, owner_of, verdict
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends, new_claim_token, recover_dead_owners
from sendwell.delivery.deliverer import Deliverer
from sendwell.delivery.progress import campaign_status, finish_if_done, state_counts

# Kinds of what is left unsent (`leftovers`): only DEFERRED has a retry time the user is told.
HELD, QUEUED, DEFERRED, PAUSED, CANCELLED = "held", "queued", "deferred", "paused", "cancelled"


def run_campaign(
    factory: sessionmaker[Session],
    deliverer: Deliverer | Sequence[Deliverer],
    *,
    campaign_id: int,
    on_progress: Callable[[dict[str, int]], None] | None = None,
    patience: float | None = None,
    role: str = "send-wait",
) -> dict[str, Any]:
    """Deliver every due send of a campaign in this process (used by `send --wait`).

    Given several deliverers (one SMTP session each), each runs in its own thread and
    claims its own batches, as the worker's consumer threads do. Sends held by another live
    process are waited for while their number keeps falling; after `patience` seconds without
    progress (default: two SMTP timeouts) the runner returns and `left` names the holder.
    """
    deliverers = [deliverer] if isinstance(deliverer, Deliverer) else list(deliverer)
    settings = deliverers[0].settings
    timeout = timedelta(seconds=settings.heartbeat_timeout)
    patience = 2 * settings.smtp_timeout if patience is None else patience
    engine = factory.kw["bind"]
    with Heartbeat.start(engine, role=role, interval=settings.heartbeat_interval) as me:
        errors: list[BaseException] = []
        lock = threading.Lock()

        def loop(d: Deliverer) -> None:
            lease = d.lease
            try:
                while not errors and not d.should_stop():
                    token = new_claim_token(me.id)
                    with transaction(factory) as session:
                        claimed = claim_sends(session, campaign_id=campaign_id, limit=d.settings.batch_size,
                                              lease=lease, token=token)
                    if not claimed:
                        if _claimable(factory, campaign_id):
                            continue  # a whole batch was deferred or skipped at the claim: go on
                        return
                    d.deliver(campaign_id, claimed, token=token)
                    d.check_rates(campaign_id)  # the circuit breaker, when the deliverer was given one
                    if on_progress is not None:
                        with lock, transaction(factory) as session:
                            on_progress(state_counts(session, campaign_id=campaign_id))
            except BaseException as exc:  # handed to the caller below
                errors.append(exc)

        def deliver_all() -> None:
            if len(deliverers) == 1:
                loop(deliverers[0])
            else:
                threads = [threading.Thread(target=loop, args=(d,), name=f"deliver-{i}")
                           for i, d in enumerate(deliverers)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            if errors:
                # What this process still holds comes back as soon as its row is gone (the exit
                # below deletes it; if the database is down, its dead pid gives it away): the next
                # `send --wait` or a worker's scan takes it back, flagging the mail in flight.
                raise errors[0]

        held_before: int | None = None
        progress_at = time.monotonic()
        while True:
            with transaction(factory) as session:
                recover_dead_owners(session, timeout=timeout, campaign_id=campaign_id)
            deliver_all()
            if any(d.should_stop() for d in deliverers):
                break
            with transaction(factory) as session:
                held = _held_by_others(session, campaign_id=campaign_id, me=me.id)
                running = session.get(Campaign, campaign_id).status == CampaignStatus.SENDING.value
            if not held or not running:
                break
            if held_before is None or held < held_before:
                progress_at = time.monotonic()
            held_before = held
            if time.monotonic() - progress_at > patience:
                break
            time.sleep(min(1.0, settings.heartbeat_interval))
    with transaction(factory) as session:
        finish_if_done(session, campaign_id=campaign_id)
        status = campaign_status(session, campaign_id=campaign_id)
        status["left"] = leftovers(session, campaign_id=campaign_id, timeout=timeout)
        return status


def _claimable(factory: sessionmaker[Session], campaign_id: int) -> bool:
    """Does the running campaign still have a queued or due deferred send?"""
    now = datetime.now(timezone.utc)
    with transaction(factory) as session:
        if session.get(Campaign, campaign_id).status != CampaignStatus.SENDING.value:
            return False
        due = (Send.state == SendState.QUEUED.value) | (
            (Send.state == SendState.DEFERRED.value) & (Send.retry_at <= now))
        return session.scalar(select(Send.id).where(Send.campaign_id == campaign_id, due).limit(1)) is not None


def _held_by_others(session: Session, *, campaign_id: int, me: int) -> int:
    """How many of the campaign's sends other registered processes hold: worth waiting for.

    Dead holders' sends are taken back at the top of the next round; sends claimed without an
    owner come back only with their lease, so they are not waited for (`leftovers` names them).
    """
    return session.scalar(
        select(func.count()).select_from(Send).where(
            Send.campaign_id == campaign_id, Send.state == SendState.SENDING.value,
            Send.claim_token.like("%.%"), Send.claim_token.not_like(f"{me}.%"))) or 0


def _ago(at: datetime, now: datetime) -> str:
    return f"{max((now - at).total_seconds(), 0):.0f} s ago"


def _utc(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def leftovers(session: Session, *, campaign_id: int, timeout: timedelta) -> list[dict[str, Any]]:
    """What of the campaign is still unsent, grouped by why, each with a line for a person.

    Kinds: HELD (claimed by a process: named, alive or not, last seen), QUEUED (waiting for a
    sender), PAUSED / CANCELLED (the campaign was stopped), DEFERRED (a later retry, with its
    time and reason). Empty when the campaign is done.
    """
    campaign = session.get(Campaign, campaign_id)
    left: list[dict[str, Any]] = []
    counts = state_counts(session, campaign_id=campaign_id)
    if campaign is not None and campaign.status in (CampaignStatus.PAUSED.value, CampaignStatus.CANCELLED.value):
        unsent = sum(counts.get(s, 0) for s in ("planned", "queued", "sending", "deferred"))
        kind = PAUSED if campaign.status == CampaignStatus.PAUSED.value else CANCELLED
        hint = f"; `sendwell campaigns resume {campaign_id}` continues it" if kind == PAUSED else ""
        left.append(dict(kind=kind, count=unsent,
                         text=f"the campaign is {campaign.status} with {unsent} sends unsent{hint}"))
    now = clock(session.connection())
    ident = Identity.current()
    held: dict[int | None, tuple[int, datetime]] = {}
    for token, n, lease_until in session.execute(
            select(Send.claim_token, func.count(), func.max(Send.lease_until))
            .where(Send.campaign_id == campaign_id, Send.state == SendState.SENDING.value)
            .group_by(Send.claim_token)).all():
        owner = owner_of(token)
        count, until = held.get(owner, (0, lease_until))
        held[owner] = (count + n, max(until, lease_until) if until and lease_until else until or lease_until)
    rows = {r.id: r for r in session.scalars(select(DeliveryProcess).where(
        DeliveryProcess.id.in_([owner for owner in held if owner is not None])))}
    for owner, (n, lease_until) in sorted(held.items(), key=lambda h: (h[0] is None, h[0] or 0)):
        row = rows.get(owner) if owner is not None else None
        if owner is None:
            text = f"{n} sends claimed by a process that does not heartbeat; its lease ends {_utc(lease_until)}"
        elif row is None:
            text = f"{n} sends held by process {owner}, which has exited; the next recovery pass takes them back"
        else:
            why = verdict(row, now=now, timeout=timeout, me=ident)
            state = "alive" if why is None else why
            text = f"{n} sends held by {describe(row)}, {state}, last seen {_ago(row.last_seen, now)}"
        left.append(dict(kind=HELD, count=n, owner=owner, text=text))
    if counts.get("queued") and not any(item["kind"] in (PAUSED, CANCELLED) for item in left):
        left.append(dict(kind=QUEUED, count=counts["queued"],
                         text=f"{counts['queued']} sends queued, not yet claimed by any sender"))
    if counts.get("planned"):
        left.append(dict(kind=QUEUED, count=counts["planned"], text=f"{counts['planned']} sends planned, not queued"))
    deferred = session.execute(
        select(Send.skip_reason, func.count(), func.min(Send.retry_at), func.max(Send.retry_at))
        .where(Send.campaign_id == campaign_id, Send.state == SendState.DEFERRED.value)
        .group_by(Send.skip_reason)).all()
    for reason, n, first, last in sorted(deferred, key=lambda r: r[0] or ""):
        why = reason or "4xx or connection retry"
        when = f"until {_utc(first)}" if first == last else f"until {_utc(first)} … {_utc(last)}"
        left.append(dict(kind=DEFERRED, count=n, reason=reason or "retry", first_retry_at=first, last_retry_at=last,
                         text=f"{n} deferred {when} ({why})"))
    return left
