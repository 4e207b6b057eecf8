"""Audit of every opt-out (method, time, IP, user agent, campaign) and the link-scanner flag."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sendwell.db.models import Campaign, Event, Send
from sendwell.db.session import transaction
from sendwell.optout import scanner
from sendwell.optout.service import unsubscribe_contact
from tests.helpers import make_contact
from tests.optout.conftest import suppressed, u

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def _sent(runtime, seconds_ago: float):
    with transaction(runtime.factory) as s:
        contact = make_contact(s)
        campaign = Campaign(name="Spring", subject="s", html="h")
        s.add(campaign)
        s.flush()
        s.add(Send(campaign_id=campaign.id, contact_id=contact.id, state="sent",
                   sent_at=datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)))
        return contact, campaign.id


def _event(runtime) -> Event:
    with transaction(runtime.factory) as s:
        return s.scalar(select(Event).where(Event.kind == "unsubscribed"))


def test_every_opt_out_records_method_time_ip_agent_and_campaign(runtime, web) -> None:
    contact, campaign_id = _sent(runtime, 3600)
    before = datetime.now(timezone.utc)
    web.post(u(runtime, contact.id, campaign_id=campaign_id), data={"source": "page"},
             headers={"User-Agent": BROWSER})
    event = _event(runtime)
    assert (event.method, event.ip, event.user_agent, event.campaign_id) == ("page", "127.0.0.1", BROWSER, campaign_id)
    assert before - timedelta(seconds=5) <= event.occurred_at <= datetime.now(timezone.utc)


def test_a_scanner_post_seconds_after_delivery_is_flagged_and_still_honoured(runtime, web) -> None:
    contact, campaign_id = _sent(runtime, 2)
    response = web.post(u(runtime, contact.id, campaign_id=campaign_id), data={"List-Unsubscribe": "One-Click"},
                        headers={"User-Agent": "Barracuda Sentinel (link protection)"})
    assert response.status_code == 200
    assert suppressed(runtime) == 1  # flagged, never ignored
    data = _event(runtime).data
    assert data["scanner_suspected"] is True and data["review"] is True
    assert set(data["scanner_signals"]) == {"scanner_user_agent", "seconds_after_delivery"}


def test_a_person_clicking_an_hour_later_is_not_flagged(runtime, web) -> None:
    contact, campaign_id = _sent(runtime, 3600)
    web.post(u(runtime, contact.id, campaign_id=campaign_id), data={"List-Unsubscribe": "One-Click"},
             headers={"User-Agent": BROWSER})
    data = _event(runtime).data
    assert data["scanner_suspected"] is False and data["scanner_signals"] == [] and "review" not in data


def test_datacentre_post_right_after_delivery_is_flagged(runtime) -> None:
    contact, campaign_id = _sent(runtime, 1)
    with transaction(runtime.factory) as s:
        result = unsubscribe_contact(s, contact_id=contact.id, campaign_id=campaign_id, method="one_click",
                                     ip="34.90.1.2", user_agent=BROWSER)
    assert result.scanner_suspected
    assert set(_event(runtime).data["scanner_signals"]) == {"datacentre_ip", "seconds_after_delivery"}


@pytest.mark.parametrize("ip,expected", [("34.90.1.2", True), ("52.1.2.3", True), ("203.0.113.9", False),
                                         ("2600:1f00::1", True), ("not-an-ip", False), ("", False)])
def test_datacentre_ranges(ip, expected) -> None:
    assert scanner.is_datacentre(ip) is expected


def test_datacentre_alone_is_not_enough(runtime) -> None:
    """Gmail's own one-click POSTs come from data centres: that alone flags nothing."""
    contact, campaign_id = _sent(runtime, 3600)
    with transaction(runtime.factory) as s:
        result = unsubscribe_contact(s, contact_id=contact.id, campaign_id=campaign_id, method="one_click",
                                     ip="34.90.1.2", user_agent="Mozilla/5.0 (compatible; Google)")
    assert not result.scanner_suspected
