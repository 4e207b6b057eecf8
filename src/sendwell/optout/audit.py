"""The opt-out audit trail's driver-level write: the `unsubscribed` event of the one-click hot path.

The other opt-out events (reason, resubscribed, preferences changed) are written through
the ORM in optout/service.py; this one sits inside the one-click request, before the 200.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from sendwell.db.rawsql import Statement

_UNSUBSCRIBED = Statement(
    "INSERT INTO events (kind, contact_id, campaign_id, method, ip, user_agent, data, occurred_at) "
    "VALUES ('unsubscribed', :cid, :camp, :method, :ip, :ua, JSON(:data), :now)")


def record_unsubscribed(
    session: Session, *, contact_id: int, campaign_id: int | None, method: str, ip: str, user_agent: str,
    data: dict[str, Any], now: datetime,
) -> None:
    """Audit one opt-out (method, time, IP, user agent, scanner flag) in the caller's transaction."""
    _UNSUBSCRIBED.run(session, cid=contact_id, camp=campaign_id, method=method, ip=ip[:64], ua=user_agent[:500],
                      data=data, now=now)
