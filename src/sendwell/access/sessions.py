"""Admin sign-in sessions kept server-side: start one at sign-in, check it on every request, revoke it at logout."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete
from sqlalchemy.orm import Session

from sendwell.db.models import AdminSessionRecord


def start_session(session: Session, *, user_id: int, max_age: float, now: datetime | None = None) -> str:
    """Record a new session for the user and return its id (the cookie carries it, signed).

    Rows older than `max_age` are deleted on the way: their cookies have expired anyway.
    """
    now = now or datetime.now(timezone.utc)
    session.execute(delete(AdminSessionRecord).where(AdminSessionRecord.created_at < now - timedelta(seconds=max_age)))
    session_id = secrets.token_urlsafe(32)
    session.add(AdminSessionRecord(id=session_id, user_id=user_id, created_at=now))
    session.flush()
    return session_id


def session_live(session: Session, *, session_id: str, user_id: int) -> bool:
    """True if the session exists, belongs to this user and was not revoked."""
    row = session.get(AdminSessionRecord, session_id) if session_id else None
    return row is not None and row.user_id == user_id and row.revoked_at is None


def revoke_session(session: Session, *, session_id: str, now: datetime | None = None) -> None:
    """End a session for good (logout); unknown or already revoked ids are left as they are."""
    row = session.get(AdminSessionRecord, session_id) if session_id else None
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or datetime.now(timezone.utc)
        session.flush()
