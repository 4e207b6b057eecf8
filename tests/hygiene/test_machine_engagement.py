"""The sunset flow counts people's engagement only: a link scanner's click keeps nobody subscribed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from sendwell.db.models import Campaign, Reengagement, Send
from sendwell.db.session import transaction
from sendwell.flows import run_hygiene
from sendwell.insight.tracking import record_click
from tests.hygiene.conftest import old_contact

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DAY = timedelta(days=1)
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def test_a_scanner_click_does_not_keep_a_contact_out_of_the_sunset_flow(runtime) -> None:
    with transaction(runtime.factory) as s:
        scanned, person = old_contact(s, at=NOW - 300 * DAY), old_contact(s, at=NOW - 300 * DAY)
        campaign = Campaign(name="x", subject="s", html="h", status="finished")
        s.add(campaign)
        s.flush()
        sends = {}
        for contact in (scanned, person):
            sends[contact.id] = Send(campaign_id=campaign.id, contact_id=contact.id, state="sent",
                                     sent_at=NOW - 10 * DAY)
            s.add(sends[contact.id])
        s.flush()
        # Defender Safe Links at the receiving server, 2 s after delivery; the person a day later.
        scan = record_click(s, send_id=sends[scanned.id].id, url="https://x.example/a", user_agent=BROWSER,
                            ip="40.107.22.5", now=NOW - 10 * DAY + timedelta(seconds=2))
        read = record_click(s, send_id=sends[person.id].id, url="https://x.example/a", user_agent=BROWSER,
                            now=NOW - 9 * DAY)
        assert scan.machine and not read.machine
        ids = scanned.id, person.id
    with transaction(runtime.factory) as s:
        run_hygiene(s, settings=runtime.settings, now=NOW)
    with transaction(runtime.factory) as s:
        entered = set(s.scalars(select(Reengagement.contact_id)))
        assert ids[0] in entered and ids[1] not in entered
