"""Click tracking with signed redirect URLs: only links we signed redirect, so no open redirect."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Contact, Event, Send

SALT_CLICK = "sendwell.click"

# css-inline hands us well-formed HTML; a targeted pattern on <a href="http(s)://…"> is enough
# and keeps every other byte of the author's markup untouched (a parser round-trip would not).
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'\s>]+)\2""", re.IGNORECASE)


def make_click_token(keys: list[str], send_id: int, url: str) -> str:
    """A token that names the send and the exact destination, signed with the newest key."""
    return URLSafeSerializer(keys, salt=SALT_CLICK).dumps([send_id, url])


def read_click_token(keys: list[str], token: str) -> tuple[int, str]:
    """(send id, destination) of a valid token; ValueError otherwise."""
    try:
        send_id, url = URLSafeSerializer(keys, salt=SALT_CLICK).loads(token)
    except (BadSignature, TypeError, ValueError) as exc:
        raise ValueError("invalid click token") from exc
    if not isinstance(send_id, int) or not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("invalid click token")
    return send_id, url


def rewrite_links(html: str, tracked: Callable[[str], str], keep: set[str]) -> str:
    """Point http(s) links through the tracker, except those in `keep` (unsubscribe, preferences)."""

    def replace(match: re.Match[str]) -> str:
        url = match.group(3).replace("&amp;", "&")
        if url in keep:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{tracked(url)}{match.group(2)}"

    return _HREF.sub(replace, html)


def record_click(session: Session, *, send_id: int, url: str, ip: str = "", user_agent: str = "") -> bool:
    """Store a click and mark the contact engaged; False if the send no longer exists."""
    send = session.get(Send, send_id)
    if send is None:
        return False
    now = datetime.now(timezone.utc)
    # `first` marks the first click of a send, so aggregates can count people without DISTINCT.
    first = session.scalar(
        select(func.count()).select_from(Event).where(Event.kind == "clicked", Event.send_id == send.id)
    ) == 0
    session.add(Event(kind="clicked", contact_id=send.contact_id, campaign_id=send.campaign_id, send_id=send.id,
                      ip=ip[:64], user_agent=user_agent[:500], data={"url": url[:2000], "first": first},
                      occurred_at=now))
    contact = session.get(Contact, send.contact_id)
    if contact is not None:
        contact.last_engaged_at = now
    session.flush()
    return True
