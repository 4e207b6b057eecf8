"""The outbox's driver-level inserts for the one-click hot path (to join the outbox's own store).

The same rows as the outbox's `enqueue`, at driver speed (see db/rawsql.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from sendwell.db.rawsql import Statement

_OUTBOX = ("INSERT INTO outbox (kind, dedupe_key, contact_id, payload, status, attempts, next_attempt_at, created_at) "
           "VALUES (:kind, {key}, :cid, JSON(:payload), 'pending', 0, :now, :now)")
_ENQUEUE = Statement(_OUTBOX.format(key="NULL"))
_ENQUEUE_ONCE = Statement(_OUTBOX.format(key=":key") + " ON CONFLICT (dedupe_key) DO NOTHING")


def enqueue_fast(
    session: Session, *, kind: str, contact_id: int | None, payload: dict[str, Any], now: datetime,
    dedupe_key: str | None = None,
) -> None:
    """Add work to the outbox in the caller's transaction; a row whose dedupe key exists is left out."""
    if dedupe_key is None:
        _ENQUEUE.run(session, kind=kind, cid=contact_id, payload=payload, now=now)
    else:
        _ENQUEUE_ONCE.run(session, kind=kind, key=dedupe_key, cid=contact_id, payload=payload, now=now)
