"""Click and open tracking: signed redirect URLs (no open redirect), the trap link, the open pixel,
and each open or click stored with its human-or-machine verdict."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Contact, Event, Send
from sendwell.insight.machines import (
    ALL_LINKS,
    BURST_LINKS,
    BURST_SECONDS,
    TOO_SOON,
    TRAP_LINK,
    Verdict,
    is_too_soon,
    judge_request,
)
from sendwell.insight.rollup import metric_name, move_counted

SALT_CLICK = "sendwell.click"
# The trap link: same path and shape as a click link, its own salt, so only we can tell them apart.
SALT_TRAP = "sendwell.trap"
SALT_OPEN = "sendwell.open"
DEFAULT_MACHINE_SECONDS = 10.0
# A 1×1 transparent GIF, the open pixel's body.
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

# css-inline hands us well-formed HTML; a targeted pattern on <a href="http(s)://…"> is enough
# and keeps every other byte of the author's markup untouched (a parser round-trip would not).
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'\s>]+)\2""", re.IGNORECASE)


def make_click_token(keys: list[str], send_id: int, url: str) -> str:
    """A token that names the send and the exact destination, signed with the newest key."""
    return URLSafeSerializer(keys, salt=SALT_CLICK).dumps([send_id, url])


def make_trap_token(keys: list[str], send_id: int, url: str) -> str:
    """A token for the hidden link no person sees: a click on it is a machine walking the mail."""
    return URLSafeSerializer(keys, salt=SALT_TRAP).dumps([send_id, url])


def _read(keys: list[str], token: str, salt: str) -> tuple[int, str]:
    try:
        send_id, url = URLSafeSerializer(keys, salt=salt).loads(token)
    except (BadSignature, TypeError, ValueError) as exc:
        raise ValueError("invalid click token") from exc
    if not isinstance(send_id, int) or not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("invalid click token")
    return send_id, url


def read_click_token(keys: list[str], token: str) -> tuple[int, str]:
    """(send id, destination) of a valid token; ValueError otherwise."""
    return _read(keys, token, SALT_CLICK)


def read_link_token(keys: list[str], token: str) -> tuple[int, str, bool]:
    """(send id, destination, is the trap link) of a valid click or trap token; ValueError otherwise."""
    try:
        return (*_read(keys, token, SALT_CLICK), False)
    except ValueError:
        return (*_read(keys, token, SALT_TRAP), True)


def make_open_token(keys: list[str], send_id: int) -> str:
    """The open pixel's token: the send id, signed."""
    return URLSafeSerializer(keys, salt=SALT_OPEN).dumps(send_id)


def read_open_token(keys: list[str], token: str) -> int:
    """The send id of a valid open token; ValueError otherwise."""
    try:
        send_id = URLSafeSerializer(keys, salt=SALT_OPEN).loads(token)
    except (BadSignature, TypeError, ValueError) as exc:
        raise ValueError("invalid open token") from exc
    if not isinstance(send_id, int) or isinstance(send_id, bool):
        raise ValueError("invalid open token")
    return send_id


def trap_html(url: str) -> str:
    """An empty, hidden, unfocusable link: invisible to people and to screen readers, not to scanners."""
    return (f'<a href="{url}" style="display:none;font-size:0;line-height:0;max-height:0;overflow:hidden" '
            'aria-hidden="true" tabindex="-1"></a>')


def pixel_html(url: str) -> str:
    """The open pixel: a 1×1 image, empty alt text so screen readers skip it."""
    return (f'<img src="{url}" width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0" aria-hidden="true">')


def append_to_body(html: str, fragment: str) -> str:
    """Put a fragment just before </body> (or at the end when the HTML has no body tag)."""
    at = html.lower().rfind("</body>")
    return html + fragment if at < 0 else html[:at] + fragment + html[at:]


def rewrite_links(html: str, tracked: Callable[[str], str], keep: set[str]) -> str:
    """Point http(s) links through the tracker, except those in `keep` (unsubscribe, preferences)."""

    def replace(match: re.Match[str]) -> str:
        url = match.group(3).replace("&amp;", "&")
        if url in keep:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{tracked(url)}{match.group(2)}"

    return _HREF.sub(replace, html)


def _is_first(session: Session, *, kind: str, send_id: int, machine: bool) -> bool:
    # `first` marks the first event of a send per verdict, so aggregates count people (and
    # machines) without DISTINCT.
    return session.scalar(
        select(func.count()).select_from(Event)
        .where(Event.kind == kind, Event.send_id == send_id, Event.machine.is_(machine))
    ) == 0


def _burst_verdict(verdict: Verdict, burst: list[Event], url: str) -> Verdict:
    if verdict.machine and verdict.reason != TRAP_LINK:
        return verdict
    if verdict.reason == TRAP_LINK or any(e.machine_reason == TRAP_LINK for e in burst):
        return Verdict(True, TRAP_LINK)  # the same burst as a click on the trap link
    # Clicks reported through the API carry no URL; they are not links of this mail.
    links = {e.data["url"] for e in burst if e.data.get("url") and not e.data.get("trap")} | {url}
    return Verdict(True, ALL_LINKS) if len(links) >= BURST_LINKS else verdict


def _rejudge(session: Session, contact: Contact | None, burst: list[Event], verdict: Verdict) -> None:
    """Turn a burst's human clicks into machine ones, and undo the engagement they recorded."""
    moves: list[tuple[Event, str | None]] = []
    restore: datetime | None = None
    for event in sorted((e for e in burst if not e.machine), key=lambda e: (e.occurred_at, e.id)):
        old = metric_name(event.kind, event.method, None, event.data.get("first"), False)
        if not moves and event.data.get("engaged_before"):
            restore = datetime.fromisoformat(event.data["engaged_before"])
        first = _is_first(session, kind=event.kind, send_id=event.send_id or 0, machine=True)
        event.machine, event.machine_reason = True, verdict.reason
        # A JSON column is saved only when a new dict is assigned.
        event.data = dict({k: v for k, v in event.data.items() if k != "engaged_before"}, first=first)
        moves.append((event, old))
        session.flush()
    if contact is not None and moves and contact.last_engaged_at in {e.occurred_at for e, _ in moves}:
        contact.last_engaged_at = restore
    move_counted(session, moves)


def _store(session: Session, send: Send, kind: str, verdict: Verdict, *, data: dict[str, Any], ip: str,
           user_agent: str, now: datetime) -> Event:
    event = Event(kind=kind, contact_id=send.contact_id, campaign_id=send.campaign_id, send_id=send.id,
                  ip=ip[:64], user_agent=user_agent[:500], data=data, occurred_at=now,
                  machine=verdict.machine, machine_reason=verdict.reason)
    session.add(event)
    session.flush()
    return event


def record_click(session: Session, *, send_id: int, url: str, ip: str = "", user_agent: str = "",
                 method: str = "GET", trap: bool = False, machine_seconds: float = DEFAULT_MACHINE_SECONDS,
                 now: datetime | None = None) -> Event | None:
    """Store a click with its verdict; a person's click marks the contact engaged. None if the send is gone."""
    now = now or datetime.now(timezone.utc)
    send = session.get(Send, send_id)
    if send is None:
        return None
    verdict = judge_request(kind="clicked", method=method, user_agent=user_agent, ip=ip)
    if trap and not verdict.machine:
        verdict = Verdict(True, TRAP_LINK)
    if not verdict.machine and is_too_soon(send.sent_at, now, seconds=machine_seconds):
        verdict = Verdict(True, TOO_SOON)
    burst = list(session.scalars(
        select(Event).where(Event.kind == "clicked", Event.send_id == send.id,
                            Event.occurred_at >= now - timedelta(seconds=BURST_SECONDS))))
    verdict = _burst_verdict(verdict, burst, url)
    contact = session.get(Contact, send.contact_id)
    data: dict[str, Any] = {"url": url[:2000],
                            "first": _is_first(session, kind="clicked", send_id=send.id, machine=verdict.machine)}
    if trap:
        data["trap"] = True
    if not verdict.machine and contact is not None:
        # Kept so a burst that turns out to be a scanner can put the contact back as it was.
        data["engaged_before"] = contact.last_engaged_at.isoformat() if contact.last_engaged_at else None
        contact.last_engaged_at = now
    event = _store(session, send, "clicked", verdict, data=data, ip=ip, user_agent=user_agent, now=now)
    if verdict.reason in (ALL_LINKS, TRAP_LINK):
        _rejudge(session, contact, burst, verdict)
    session.flush()
    return event


def record_open(session: Session, *, send_id: int, ip: str = "", user_agent: str = "", method: str = "GET",
                now: datetime | None = None) -> Event | None:
    """Store an open with its verdict (opens never move last_engaged_at: pixels are too easily faked)."""
    send = session.get(Send, send_id)
    if send is None:
        return None
    verdict = judge_request(kind="opened", method=method, user_agent=user_agent, ip=ip)
    first = _is_first(session, kind="opened", send_id=send.id, machine=verdict.machine)
    return _store(session, send, "opened", verdict, data={"first": first}, ip=ip, user_agent=user_agent,
                  now=now or datetime.now(timezone.utc))
