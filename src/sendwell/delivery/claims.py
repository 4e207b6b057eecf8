"""Claims on sends: batches for the queue, the claim with its eligibility re-check, release and lease recovery."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, literal_column, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns.service import topic_slug
from sendwell.db.models import Campaign, CampaignStatus, Contact, DeliveryProcess, Send, SendState
from sendwell.db.processes import Identity, clock, describe, owner_of, verdict
from sendwell.delivery.warmup import hold_for_warm_up
from sendwell.policy.caps import FrequencyPolicy
from sendwell.policy.eligibility import SKIP_FREQUENCY_CAP, skip_reason
from sendwell.policy.service import defer_outside_window, defer_sends, earliest_allowed

BATCH_SIZE = 200
LEASE = timedelta(minutes=10)  # default; SENDWELL_LEASE_SECONDS
log = logging.getLogger("sendwell.delivery")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def chunks(items: list[int], size: int) -> Iterator[list[int]]:
    """`items` in slices of at most `size`, to keep `IN (...)` lists within the drivers' limits."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def new_claim_token(owner: int | None = None) -> str:
    """A fresh fencing token for one claim; `owner` (a registered process's id) leads it.

    The claim records its owner inside the token it already writes: nothing more to write on
    the claim, nor per mail, nor a column on `sends` (recovery reads the owner back from it).
    At least 64 random bits follow the owner.
    """
    if owner is None:
        return secrets.token_hex(16)
    prefix = f"{owner}."
    return prefix + secrets.token_hex(16)[: max(32 - len(prefix), 16)]


def claim_sends(
    session: Session,
    *,
    campaign_id: int,
    send_ids: list[int] | None = None,
    limit: int = BATCH_SIZE,
    now: datetime | None = None,
    lease: timedelta = LEASE,
    token: str | None = None,
) -> list[int]:
    """Atomically take queued (or due deferred) sends into `sending`, re-checking eligibility.

    An unsubscribe committed before this transaction turns the send into `skipped`: the
    claim and the re-check happen in one transaction (DESIGN.md: eligibility twice).
    A `token` from `new_claim_token(owner)` names the claiming process (sendwell.db.processes),
    so recovery can take back a dead process's sends in seconds instead of a lease.
    """
    now = now or _now()
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING.value:
        return []
    due = (Send.state == SendState.QUEUED.value) | (
        (Send.state == SendState.DEFERRED.value) & (Send.retry_at <= now)
    )
    candidates = select(Send.id).where(Send.campaign_id == campaign_id, due).order_by(Send.id).limit(limit)
    if send_ids is not None:
        candidates = candidates.where(Send.id.in_(send_ids))
    if session.get_bind().dialect.name == "postgresql":
        # Several workers claim at once: skip rows another worker holds instead of waiting.
        candidates = candidates.with_for_update(skip_locked=True)
    # Two statements on purpose: inside `UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE
    # SKIP LOCKED)` PostgreSQL may rescan the subquery and lock (and claim) more than n rows.
    # SQLite needs no row locks: BEGIN IMMEDIATE already serialises writers.
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    claimed = list(
        session.scalars(
            update(Send)
            .where(Send.id.in_(ids), due)
            .values(state=SendState.SENDING.value, lease_until=now + lease, updated_at=now, claim_token=token,
                    skip_reason=None)
            .returning(Send.id)
        )
    )
    if not claimed:
        return []
    policy = FrequencyPolicy.from_json(campaign.policy)
    # The same eligibility as the plan; only in-flight sends planned before this one count
    # toward its caps (eligibility._cap_clause explains why).
    reason = skip_reason(campaign, topic_slug(session, campaign), now, policy=policy, before=Send.id)
    rows = session.execute(
        select(Send.id, reason).join(Contact, Contact.id == Send.contact_id).where(
            Send.id.in_(claimed), reason.is_not(None)
        )
    ).all()
    capped = [send_id for send_id, why in rows if why == SKIP_FREQUENCY_CAP and campaign.over_cap == "defer"]
    defer_sends(session, retry=earliest_allowed(session, policy=policy, send_ids=capped, now=now),
                reason=SKIP_FREQUENCY_CAP, now=now)
    for send_id, why in rows:
        if send_id in capped:
            continue
        session.execute(
            update(Send).where(Send.id == send_id).values(
                state=SendState.SKIPPED.value, skip_reason=why, lease_until=None, updated_at=now
            )
        )
    held = {r[0] for r in rows}
    # Outside the recipient's local sending window: wait for the next opening, never skip.
    held.update(defer_outside_window(session, campaign=campaign, policy=policy, now=now,
                                     send_ids=[i for i in claimed if i not in held]))
    # Over today's warm-up allowance of the recipient's provider group: wait for tomorrow's (delivery/warmup.py).
    held.update(hold_for_warm_up(session, campaign=campaign, policy=policy, now=now,
                                 send_ids=[i for i in claimed if i not in held]))
    session.flush()
    return [i for i in claimed if i not in held]


def owned(token: str | None) -> Any:
    """The WHERE term that limits an UPDATE to the sends this claim still holds."""
    return Send.claim_token == token if token is not None else true()


def release_claimed(conn: Any, ids: list[int], token: str | None = None) -> None:
    """Put claimed sends back to `queued`, those still held by this claim when a token is given."""
    for chunk in chunks(ids, 500):
        conn.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value, owned(token)).values(
            state=SendState.QUEUED.value, lease_until=None, in_flight_at=None, claim_token=None, updated_at=_now()))


def release_sends(factory: sessionmaker[Session], *, send_ids: list[int]) -> None:
    """Hand claimed-but-unsent sends back to the queue."""
    if not send_ids:
        return
    with factory.kw["bind"].begin() as conn:
        release_claimed(conn, send_ids)


@dataclass
class Recovery:
    """What a lease-recovery pass did: sends put back per campaign, and the possible duplicates."""

    requeued: dict[int, list[int]] = field(default_factory=dict)
    possibly_duplicated: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.requeued.values())


    def add(self, other: Recovery) -> Recovery:
        for campaign_id, ids in other.requeued.items():
            self.requeued.setdefault(campaign_id, []).extend(ids)
        self.possibly_duplicated.extend(other.possibly_duplicated)
        return self


# A literal, not a bound parameter: SQLite only uses the partial lease index when the query
# repeats its WHERE term verbatim.
_SENDING = Send.state == literal_column("'sending'")


def _requeue(session: Session, query: Any, now: datetime, why: str) -> Recovery:
    """Put the claimed sends `query` selects (id, campaign id, in_flight_at) back to `queued`.

    A send with `in_flight_at` set was inside its SMTP transaction when its claimer stopped:
    the server may have accepted it, so the retry may duplicate it; it is flagged. There is
    at most one such send per SMTP session of the claimer.
    """
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = sorted(session.execute(query).all())
    report = Recovery()
    for send_id, campaign_id, in_flight in rows:
        report.requeued.setdefault(campaign_id, []).append(send_id)
        if in_flight is not None:
            report.possibly_duplicated.append(send_id)
    ids = [r[0] for r in rows]
    for chunk in chunks(ids, 500):
        session.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value).values(
            state=SendState.QUEUED.value, lease_until=None, in_flight_at=None, claim_token=None, updated_at=now))
    for chunk in chunks(report.possibly_duplicated, 500):
        session.execute(update(Send).where(Send.id.in_(chunk)).values(possible_duplicate=True))
    if report.possibly_duplicated:
        log.warning("%s: %d sends were in flight when their claimer stopped and may be "
                    "delivered twice: %s", why, len(report.possibly_duplicated), report.possibly_duplicated[:20])
    session.flush()
    return report


def recover_expired_leases(session: Session, *, now: datetime | None = None) -> Recovery:
    """Sends whose lease passed go back to the queue; those in flight at the death are flagged.

    The backstop behind `recover_dead_owners`: it also catches a live process that is stuck
    (its heartbeat thread beats, its senders do not renew), and claims without an owner.
    """
    now = now or _now()
    # No ORDER BY: SQLite would rather scan the whole table in id order than sort the few expired rows.
    query = select(Send.id, Send.campaign_id, Send.in_flight_at).where(_SENDING, Send.lease_until < now)
    return _requeue(session, query, now, "lease recovery")


def recover_dead_owners(session: Session, *, timeout: timedelta, campaign_id: int | None = None,
                        now: datetime | None = None) -> Recovery:
    """Sends claimed by a process that died go back to the queue at once (sendwell.db.processes).

    Dead: its row is gone, its pid on this machine is not running, or it has been silent for
    `timeout`. With `campaign_id`, only that campaign's sends (`send --wait`). The claims are
    read before the registry, so a process that registered and claimed after this pass began is
    seen alive, never taken for a missing one. The rows of dead processes are deleted.
    """
    now = now or _now()
    scope = [_SENDING, Send.claim_token.like("%.%")]
    if campaign_id is not None:
        scope.append(Send.campaign_id == campaign_id)
    tokens: dict[int, list[str]] = {}
    for token in session.scalars(select(Send.claim_token).where(*scope).distinct()):
        owner = owner_of(token)
        if owner is not None:
            tokens.setdefault(owner, []).append(token)
    registry = {row.id: row for row in session.scalars(select(DeliveryProcess))}
    at = clock(session.connection())
    me = Identity.current()
    dead = {}
    for process_id in set(tokens) | set(registry):
        why = verdict(registry.get(process_id), now=at, timeout=timeout, me=me)
        if why is not None:
            dead[process_id] = why
    report = Recovery()
    for process_id in sorted(set(tokens) & set(dead)):
        row = registry.get(process_id)
        name = describe(row) if row is not None else f"process {process_id}"
        found = Recovery()
        for chunk in chunks(tokens[process_id], 500):  # type: ignore[arg-type]
            found.add(_requeue(session, select(Send.id, Send.campaign_id, Send.in_flight_at)
                               .where(_SENDING, Send.claim_token.in_(chunk)), now,
                               f"recovery from {name} ({dead[process_id]})"))
        if found.count:
            log.warning("recovered %d sends claimed by %s: %s", found.count, name, dead[process_id])
        report.add(found)
    buried = [i for i in dead if i in registry and (campaign_id is None or i in tokens)]
    if buried:
        session.execute(delete(DeliveryProcess).where(DeliveryProcess.id.in_(buried)))
    session.flush()
    return report


def recover_claim(session: Session, *, token: str) -> Recovery:
    """Hand back what one claim still holds (its batch failed, e.g. the database went away mid-batch)."""
    query = select(Send.id, Send.campaign_id, Send.in_flight_at).where(_SENDING, Send.claim_token == token)
    return _requeue(session, query, _now(), "a failed batch")


def due_batches(session: Session, *, now: datetime | None = None, batch_size: int = BATCH_SIZE,
                lease: timedelta = LEASE, lost_queued: bool = True,
                lost_after: timedelta | None = None) -> list[tuple[int, list[int]]]:
    """(campaign id, send ids) of running campaigns to hand to the queue (again).

    - Deferred sends whose retry time has come, each once: handing one over stamps its
      `updated_at`, and it is handed over again only if a lease period passes without a
      worker taking it (its job was lost).
    - With `lost_queued`, queued sends untouched for `lost_after` (default: a lease period):
      their job was lost (a crash between commit and enqueue, a restarted Redis, a worker killed
      between taking a job and claiming it). Only ask for these when the queue is empty: while
      it is not, a queued send is simply waiting its turn — in a 100,000-mail campaign most
      sends wait far longer than a lease — and enqueueing them all again would flood the queue
      with no-op jobs. With an empty queue every job was taken, and a taken job claims its
      sends within milliseconds, so `lost_after` can be seconds (the worker passes the
      heartbeat timeout). A due retry handed over earlier counts as lost after `lost_after`
      too then, and after a lease while the queue is busy.
    Enqueueing a send twice is harmless (claiming is idempotent), only wasteful.
    """
    now = now or _now()
    stale = now - lease
    lost = now - lost_after if lost_after is not None else stale
    due = (Send.state == SendState.DEFERRED.value) & (Send.retry_at <= now) & (
        (Send.updated_at < Send.retry_at) | (Send.updated_at < (lost if lost_queued else stale)))
    if lost_queued:
        due = due | ((Send.state == SendState.QUEUED.value) & (Send.updated_at < lost))
    rows = session.execute(
        select(Send.campaign_id, Send.id)
        .join(Campaign, Campaign.id == Send.campaign_id)
        .where(Campaign.status == CampaignStatus.SENDING.value, due)
        .order_by(Send.campaign_id, Send.id)
    ).all()
    batches: dict[int, list[int]] = {}
    for campaign_id, send_id in rows:
        batches.setdefault(campaign_id, []).append(send_id)
    # Stamp what is handed over, so the next scan does not hand it over again.
    handed = [i for ids in batches.values() for i in ids]
    for chunk in chunks(handed, 500):
        session.execute(update(Send).where(Send.id.in_(chunk),
                                           Send.state.in_([SendState.QUEUED.value, SendState.DEFERRED.value]))
                        .values(updated_at=now))
    return [
        (campaign_id, ids[i : i + batch_size])
        for campaign_id, ids in batches.items()
        for i in range(0, len(ids), batch_size)
    ]
