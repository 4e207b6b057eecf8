"""Table-level operations on `outbox` rows: enqueue, claim, settle, finish with backoff.

Why an outbox drained after commit, rather than doing the work inside the request or
enqueueing a Huey job:
- the opt-out must be committed before the 200 (RFC 8058, COMPLIANCE rule 10), and an SMTP
  server or webhook endpoint that is slow or down must neither delay that answer nor roll the
  opt-out back;
- the row is written in the caller's own transaction, so a crash cannot lose the follow-up
  and a rolled-back change sends nothing (a Huey job enqueued after commit could be lost in
  between, and one enqueued before commit could fire for a rollback);
- the unique dedupe key makes "never sent twice" a database constraint, for every writer,
  including mailto and reply opt-outs arriving in another process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from sendwell.db.models import OutboxMessage
from sendwell.db.rawsql import Statement
from sendwell.db.session import transaction

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Message:
    """A claimed outbox row as its handler sees it (detached from any session)."""

    id: int
    kind: str
    contact_id: int | None
    payload: dict[str, Any]


def enqueue(
    session: Session, *, kind: str, contact_id: int | None = None, payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None, now: datetime | None = None,
) -> bool:
    """Add work to the outbox in the caller's transaction; False if the dedupe key already exists."""
    values = dict(kind=kind, contact_id=contact_id, payload=payload or {}, dedupe_key=dedupe_key,
                  status="pending", attempts=0, next_attempt_at=now or datetime.now(timezone.utc),
                  created_at=now or datetime.now(timezone.utc))
    if dedupe_key is None:
        session.add(OutboxMessage(**values))
        return True
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(OutboxMessage).values(**values).on_conflict_do_nothing(
        index_elements=["dedupe_key"]).returning(OutboxMessage.id)
    return session.execute(stmt).scalar() is not None


# The same rows as `enqueue`, at driver speed, for the one-click hot path (db/rawsql.py says why).
_OUTBOX_SQL = ("INSERT INTO outbox (kind, dedupe_key, contact_id, payload, status, attempts, next_attempt_at, "
               "created_at) VALUES (:kind, {key}, :cid, JSON(:payload), 'pending', 0, :now, :now)")
_ENQUEUE = Statement(_OUTBOX_SQL.format(key="NULL"))
_ENQUEUE_ONCE = Statement(_OUTBOX_SQL.format(key=":key") + " ON CONFLICT (dedupe_key) DO NOTHING")


def enqueue_fast(
    session: Session, *, kind: str, contact_id: int | None, payload: dict[str, Any], now: datetime,
    dedupe_key: str | None = None,
) -> None:
    """As `enqueue`, through the driver: the rows of the opt-out hot path (a row whose dedupe key exists is left out)."""
    if dedupe_key is None:
        _ENQUEUE.run(session, kind=kind, cid=contact_id, payload=payload, now=now)
    else:
        _ENQUEUE_ONCE.run(session, kind=kind, key=dedupe_key, cid=contact_id, payload=payload, now=now)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at 6 hours."""
    return min(timedelta(seconds=30) * (2 ** max(attempts - 1, 0)), timedelta(hours=6))


def claim(factory: sessionmaker[Session], *, now: datetime, limit: int = 200) -> list[int]:
    """Lease due rows to this dispatcher; a crashed dispatcher's lease simply expires."""
    with transaction(factory) as session:
        query = (
            select(OutboxMessage.id)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
                   or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now))
            .order_by(OutboxMessage.id).limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        if ids:
            session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(lease_until=now + LEASE))
        return ids


def load(factory: sessionmaker[Session], ids: list[int]) -> list[Message]:
    """The claimed rows still pending, in id order."""
    with transaction(factory) as session:
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.contact_id, OutboxMessage.payload)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending").order_by(OutboxMessage.id))
        return [Message(id, kind, contact_id, dict(payload or {})) for id, kind, contact_id, payload in rows]


def settle(session: Session, ids: Iterable[int], *, status: str, error: str | None = None,
           sent_at: datetime | None = None) -> None:
    """Give rows their final status in the caller's transaction (one statement, one attempt each)."""
    ids = list(ids)
    if not ids:
        return
    values: dict[str, Any] = dict(status=status, lease_until=None, attempts=OutboxMessage.attempts + 1,
                                  last_error=error[:1000] if error else None)
    if sent_at is not None:
        values["sent_at"] = sent_at
    session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(**values))


def finish(factory: sessionmaker[Session], row_id: int, *, status: str, error: str | None = None,
           now: datetime | None = None, record: Callable[[Session, OutboxMessage], None] | None = None) -> None:
    """Record a row's outcome: done / skipped / failed, or back to pending with a backoff.

    `record(session, row)` runs in the same transaction once the row is settled (the webhook
    delivery log), so the log and the row's state never disagree.
    """
    now = now or datetime.now(timezone.utc)
    with transaction(factory) as session:
        row = session.get(OutboxMessage, row_id)
        if row is None:
            return
        row.lease_until = None
        row.last_error = error[:1000] if error else None
        row.attempts += 1
        if status == "retry":
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
            else:
                row.next_attempt_at = now + backoff(row.attempts)
        else:
            row.status = status
            if status == "done":
                row.sent_at = now
        if record is not None:
            record(session, row)
