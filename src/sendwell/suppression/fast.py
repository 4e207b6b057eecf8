"""The suppression list's driver-level write, for the one-click hot path (see db/rawsql.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from sendwell.db.models import SCOPE_ALL
from sendwell.db.rawsql import Statement

# The same row as service.suppress: ON CONFLICT keeps the first reason and time.
_SUPPRESS = Statement(
    "INSERT INTO suppressions (email_hash, scope, reason, contact_id, campaign_id, created_at) "
    "VALUES (:h, :scope, :reason, :cid, :camp, :now) "
    "ON CONFLICT (email_hash, scope) DO NOTHING RETURNING id")


def suppress_fast(
    session: Session, *, email_hash: str, reason: str, contact_id: int | None, campaign_id: int | None,
    now: datetime, scope: str = SCOPE_ALL,
) -> bool:
    """`service.suppress` at driver speed; True if the suppression is new."""
    return bool(_SUPPRESS.run(session, h=email_hash, scope=scope, reason=reason, cid=contact_id,
                              camp=campaign_id, now=now))
