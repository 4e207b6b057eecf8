"""Demo step: a link scanner and a person click links of a demo mail; each click is shown with its verdict."""

from __future__ import annotations

import email
import email.policy
import re
import time
from datetime import datetime, timezone
from typing import Any

import httpx
from sqlalchemy import select

from sendwell.db.models import Contact, Event, Send
from sendwell.db.session import transaction
from sendwell.insight.tracking import read_link_token

# What Defender for Office 365 Safe Links and similar scanners present: an ordinary browser.
# They are caught by what they do (every link at once, the hidden trap link, seconds after
# delivery), not by what they say they are.
SCANNER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0")
PERSON_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                "Version/17.5 Safari/605.1.15")


def _tracked_links(data: bytes, base_url: str) -> list[str]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    part = message.get_body(("html",))
    html = part.get_content() if part is not None else ""  # type: ignore[union-attr]
    return re.findall(rf'href="({re.escape(base_url)}/r/[^"]+)"', html)


def _label(event: Event) -> str:
    return f"MACHINE ({event.machine_reason})" if event.machine else "HUMAN"


def show_engagement_signals(runtime: Any, messages: list[Any], say: Any = print) -> dict[str, Any]:
    """A scanner follows every link of one mail, a person clicks one link of another; both verdicts."""
    settings = runtime.settings
    keys = settings.secret_keys
    mails = [(m.rcpt_tos[0], links) for m in messages if (links := _tracked_links(m.data, settings.base_url))]
    (scanned_to, scanned_links), (person_to, person_links) = mails[1], mails[2]
    real = [url for url in person_links if not read_link_token(keys, url.rsplit("/", 1)[1])[2]]
    with transaction(runtime.factory) as session:
        sent_at = session.scalar(select(Send.sent_at).join(Contact, Contact.id == Send.contact_id)
                                 .where(Contact.email == person_to).order_by(Send.id))
        scanned_before = session.scalar(select(Contact.last_engaged_at).where(Contact.email == scanned_to))
    # A person reads before clicking: wait out the seconds in which only a scanner clicks.
    if sent_at is not None:
        time.sleep(max(0.0, settings.machine_click_seconds - (datetime.now(timezone.utc) - sent_at).total_seconds()))
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        for url in scanned_links:  # the scanner: every link in document order, the hidden trap link included
            client.get(url, headers={"User-Agent": SCANNER_AGENT})
        client.get(real[0], headers={"User-Agent": PERSON_AGENT})
    with transaction(runtime.factory) as session:
        def clicks(address: str) -> list[Event]:
            return list(session.scalars(select(Event).join(Contact, Contact.id == Event.contact_id)
                                        .where(Contact.email == address, Event.kind == "clicked").order_by(Event.id)))

        scanner, person = clicks(scanned_to), clicks(person_to)
        engaged = session.scalar(select(Contact.last_engaged_at).where(Contact.email == person_to)) is not None
        scanned_after = session.scalar(select(Contact.last_engaged_at).where(Contact.email == scanned_to))
        result = {
            "scanner": [{"machine": e.machine, "reason": e.machine_reason} for e in scanner],
            "person": [{"machine": e.machine, "reason": e.machine_reason} for e in person],
            "person_engaged": engaged,
            "scanner_engaged": scanned_after != scanned_before,
        }
        say(f"10b. A link scanner followed all {len(scanner)} links of the mail to {scanned_to}: "
            f"{', '.join(_label(e) for e in scanner)}; not engagement. "
            f"A person clicked a link in the mail to {person_to}: {', '.join(_label(e) for e in person)}; "
            f"{'counted as engagement' if engaged else 'not counted'}")
    return result
