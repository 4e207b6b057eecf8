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

A worker that dies mid-hand-off leaves its mark behind; marks older than the hand-off window
(four SMTP timeouts: one hand-off waits for at most a few replies) are not waited for.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
import time

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from sendwell.db.models import SCOPE_ALL, Send
from sendwell.db.rawsql import Statement
from sendwell.policy.eligibility import SUPPRESSION_SKIP

# Driver SQL on the deliverer's own connection and DB-API cursor, not an ORM Session and a
# statement built per mail: that cost ~0.5 ms of CPU per mail (cProfile of a deliverer).
_LOCK_CONTACT = Statement("SELECT id FROM contacts WHERE id = :cid FOR SHARE")  # PostgreSQL only
_SUPPRESSION = Statement("SELECT reason FROM suppressions WHERE email_hash = :h AND scope = :scope ORDER BY id LIMIT 1")
# For sendwell.optout.service, inside the opt-out's transaction,
# after the contact is locked; a stale mark is weeded out by the wait below, not here.
IN_FLIGHT = Statement("SELECT 1 FROM sends WHERE contact_id = :cid AND state = 'sending' AND in_flight_at IS NOT NULL LIMIT 1")


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


def _pending(engine: Engine, contact_id: int, window: timedelta) -> bool:
    since = datetime.now(timezone.utc) - window
    with engine.connect() as conn:
        return conn.execute(select(Send.id).where(Send.contact_id == contact_id, Send.state == "sending",
                                                  Send.in_flight_at > since).limit(1)).first() is not None


def wait_for_hand_off(engine: Engine, contact_id: int, *, window: timedelta) -> None:
    """Block until no hand-off to this contact is under way (a mark older than `window` is not)."""
    pause = 0.002
    while _pending(engine, contact_id, window):
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


async def await_hand_off(engine: Engine, contact_id: int, *, window: timedelta) -> None:
    """`wait_for_hand_off` for the event loop: the reads run in a thread, the pauses on the loop."""
    pause = 0.002
    while await asyncio.to_thread(_pending, engine, contact_id, window):
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)
