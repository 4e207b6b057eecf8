"""No marketing mail leaves after a person's opt-out POST returned: the hand-off gate.

Batch claiming re-checks eligibility, but a batch claimed before an opt-out would still go
out after the person's POST returned. So the two sides meet on the contact:

- **The deliverer**, right before each SMTP transaction, in one short transaction: takes the
  contact (`hold_for_send`: a share lock on PostgreSQL; SQLite's transaction is BEGIN
  IMMEDIATE, the single write lock), checks the suppression list, and marks the send in
  flight (`in_flight_at`). It commits, hands the mail to SMTP, and clears the mark when it
  records the result.
- **An opt-out** takes the contact for update, writes the suppression, and reads in the same
  transaction whether a hand-off for that contact is under way (`hand_off_pending`). After
  its commit and before it answers, the web adapter waits for that hand-off to end
  (`wait_for_hand_off` / `await_hand_off`).

The row lock (or SQLite's single writer) orders the two transactions: either the opt-out
committed first, and the hand-off finds the suppression and skips the mail; or the hand-off
committed first, and the opt-out sees its mark and answers only once the SMTP transaction
is over. The write lock is no longer held during the SMTP exchange (it was, until 2026-11-27):
on SQLite that made every worker's hand-offs strictly one at a time, and a writer in another
process could starve behind them.

The wait is bounded, so a person's POST is answered within two seconds whatever happens to
the sender (`WAIT_BUDGET`, 1.5 s, leaving room for the opt-out's own transaction):

- A mark whose owner is dead is not waited for at all (sendwell.db.processes): a pid on this
  machine that is no longer running at once, a process silent past the heartbeat timeout, a
  process that is gone from the registry. A killed worker therefore costs the opt-out nothing.
- A mark without an owner (a claim from before owners were recorded) is waited for while it
  is younger than the hand-off window (four SMTP timeouts), within the budget.
- A live sender whose SMTP transaction is slow (a tarpitting or greylisting server answers
  each command only after seconds; on another machine, its pid cannot be looked at) is waited
  for only until the budget runs out; then the answer goes. That one mail, handed to SMTP before
  the opt-out committed, may then reach the person after their POST returned. The choice:
  mail clients give up on a one-click POST after a few seconds (an opt-out whose answer never
  arrives is retried, or reported as failed, to the person), the law counts the opt-out from
  its recording (done, committed before the wait), and the mail was already on its way when the
  person clicked: a mail that was sent before the opt-out, arriving late. Nothing claimed
  after the commit goes out (the hand-off's suppression check).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
import time

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from sendwell.db.models import SCOPE_ALL, DeliveryProcess, Send
from sendwell.db.processes import Identity, clock, owner_of, verdict
from sendwell.db.rawsql import Statement
from sendwell.policy.eligibility import SUPPRESSION_SKIP

# Driver SQL on the deliverer's own connection and DB-API cursor, not an ORM Session and a
# statement built per mail: that cost ~0.5 ms of CPU per mail (cProfile of a deliverer).
_LOCK_CONTACT = Statement("SELECT id FROM contacts WHERE id = :cid FOR SHARE")  # PostgreSQL only
_SUPPRESSION = Statement("SELECT reason FROM suppressions WHERE email_hash = :h AND scope = :scope ORDER BY id LIMIT 1")
# For sendwell.optout.service, inside the opt-out's transaction,
# after the contact is locked; a stale mark is weeded out by the wait below, not here.
IN_FLIGHT = Statement("SELECT 1 FROM sends WHERE contact_id = :cid AND state = 'sending' AND in_flight_at IS NOT NULL LIMIT 1")


WAIT_BUDGET = 1.5  # seconds an opt-out waits for a hand-off at most (the answer within 2 s)
HEARTBEAT_TIMEOUT = timedelta(seconds=15)  # the default of SENDWELL_HEARTBEAT_TIMEOUT


def hand_off_window(smtp_timeout: float) -> timedelta:
    """How long a hand-off can take: a mark older than this belongs to a worker that died."""
    return timedelta(seconds=4 * smtp_timeout)


def hold_for_send(conn: Connection, *, contact_id: int, email_hash: str) -> str | None:
    """Lock the contact against a concurrent opt-out; the skip reason if it must not be mailed.

    Call it in the transaction that marks the send in flight, before the SMTP hand-off.
    """
    if conn.dialect.name == "postgresql":
        _LOCK_CONTACT.execute(conn, cid=contact_id)
    row = _SUPPRESSION.execute(conn, h=email_hash, scope=SCOPE_ALL).fetchone()
    if row is None:
        return None
    return SUPPRESSION_SKIP.get(row[0], "suppressed")


def _pending(engine: Engine, contact_id: int, window: timedelta, stale_after: timedelta = HEARTBEAT_TIMEOUT) -> bool:
    """Is a hand-off to this contact under way, by a sender that may be alive?"""
    since = datetime.now(timezone.utc) - window
    with engine.connect() as conn:
        # One query in the usual case (no mark). The claim token names the sender (delivery/claims.py).
        tokens = conn.execute(select(Send.claim_token).where(
            Send.contact_id == contact_id, Send.state == "sending", Send.in_flight_at > since)).scalars().all()
        if not tokens:
            return False
        owners = [owner_of(token) for token in tokens]
        if None in owners:
            return True  # no owner recorded: only the window tells
        registry = {row.id: row for row in conn.execute(
            select(DeliveryProcess).where(DeliveryProcess.id.in_(owners))).all()}
        now, me = clock(conn), Identity.current()
    return any(verdict(registry.get(owner), now=now, timeout=stale_after, me=me) is None for owner in owners)


def wait_for_hand_off(engine: Engine, contact_id: int, *, window: timedelta,
                      stale_after: timedelta = HEARTBEAT_TIMEOUT, budget: float = WAIT_BUDGET) -> None:
    """Block until no hand-off to this contact by a live sender is under way, `budget` seconds at most.

    A mark older than `window`, or whose sender is dead (silent past `stale_after`), is not waited for.
    """
    pause, deadline = 0.002, time.monotonic() + budget
    while _pending(engine, contact_id, window, stale_after) and time.monotonic() < deadline:
        time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, 0.05)


async def await_hand_off(engine: Engine, contact_id: int, *, window: timedelta,
                         stale_after: timedelta = HEARTBEAT_TIMEOUT, budget: float = WAIT_BUDGET) -> None:
    """`wait_for_hand_off` for the event loop: the reads run in a thread, the pauses on the loop."""
    pause, deadline = 0.002, time.monotonic() + budget
    while await asyncio.to_thread(_pending, engine, contact_id, window, stale_after) and time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, 0.05)
