"""The suppression list: who must never be mailed again, and in what scope."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sendwell.db.models import SCOPE_ALL, Contact, Event, Suppression, SuppressionReason


def hash_email(pepper: bytes, email: str) -> str:
    """HMAC-SHA256 of the normalised address: survives GDPR erasure of the address itself."""
    return hmac.new(pepper, email.strip().lower().encode(), hashlib.sha256).hexdigest()


def suppress(
    session: Session,
    *,
    email_hash: str,
    reason: str,
    scope: str = SCOPE_ALL,
    contact_id: int | None = None,
    campaign_id: int | None = None,
) -> bool:
    """Add a suppression; True if it is new, False if the address was already suppressed."""
    # INSERT … ON CONFLICT DO NOTHING keeps concurrent opt-outs of one address idempotent
    # without a savepoint dance: the first reason and time stay.
    values = dict(
        email_hash=email_hash,
        scope=scope,
        reason=reason,
        contact_id=contact_id,
        campaign_id=campaign_id,
    )
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(Suppression)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["email_hash", "scope"])
        .returning(Suppression.id)
    )
    # RETURNING, not rowcount: the ORM execution path does not report rowcount reliably.
    return session.execute(stmt).scalar() is not None


def get_suppressions(session: Session, *, email_hash: str) -> list[Suppression]:
    """All suppressions of one address."""
    return list(session.scalars(select(Suppression).where(Suppression.email_hash == email_hash)))


def lift(session: Session, *, email_hash: str, reasons: tuple[str, ...], scope: str = SCOPE_ALL) -> int:
    """Remove suppressions of the given reasons (only by the person's own action)."""
    rows = session.scalars(
        select(Suppression).where(
            Suppression.email_hash == email_hash,
            Suppression.scope == scope,
            Suppression.reason.in_(reasons),
        )
    ).all()
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


def add_manual_suppression(
    session: Session, *, pepper: bytes, email: str, scope: str = SCOPE_ALL, note: str = ""
) -> tuple[Suppression, bool]:
    """Suppress an address by hand (reason `manual`); returns (row, is_new). Stored contacts get an event."""
    email_hash = hash_email(pepper, email)
    contact_id = session.scalar(select(Contact.id).where(Contact.email_hash == email_hash))
    is_new = suppress(session, email_hash=email_hash, reason=SuppressionReason.MANUAL.value, scope=scope,
                      contact_id=contact_id)
    if is_new and contact_id is not None:
        session.add(Event(kind="suppressed", contact_id=contact_id, method="api",
                          data={"reason": SuppressionReason.MANUAL.value, "scope": scope, "note": note[:500]}))
    session.flush()
    row = session.scalar(select(Suppression).where(Suppression.email_hash == email_hash, Suppression.scope == scope))
    assert row is not None
    return row, is_new
