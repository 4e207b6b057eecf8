"""Machines (image proxies, link scanners, the trap link) are told apart from people; only people engage."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sendwell.db.models import Campaign, Contact, Event, InsightCounter, Send
from sendwell.db.session import transaction
from sendwell.insight import machines as m
from sendwell.insight.rates import campaign_rates
from sendwell.insight.report import build_report, render_html
from sendwell.insight.rollup import roll_up_events
from sendwell.insight.tracking import (
    make_click_token,
    make_open_token,
    make_trap_token,
    record_click,
    record_open,
)
from sendwell.segments.expression import compile_segment
from sendwell.web.app import create_app
from tests.helpers import make_contact

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
SAFE_LINKS = "Mozilla/5.0 (compatible; SafeLinks; +https://aka.ms/safelinks)"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


@pytest.mark.parametrize(("kind", "method", "agent", "ip", "reason"), [
    ("clicked", "HEAD", BROWSER, "", m.HEAD_REQUEST),
    ("opened", "GET", GMAIL_PROXY, "66.249.84.1", m.GOOGLE_IMAGE_PROXY),
    ("opened", "GET", "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "", m.YAHOO_PROXY),
    ("opened", "GET", "Mozilla/5.0", "203.0.113.9", m.APPLE_MPP),
    ("opened", "GET", BROWSER, "17.58.100.7", m.APPLE_MPP),
    ("clicked", "GET", "Mozilla/5.0 Barracuda Sentinel (EE)", "", m.SCANNER_USER_AGENT),
    ("clicked", "GET", "python-requests/2.32", "", m.SCANNER_USER_AGENT),
    ("clicked", "GET", "", "", m.SCANNER_USER_AGENT),
    ("clicked", "GET", BROWSER, "40.107.22.5", m.SCANNER_NETWORK),
    ("clicked", "GET", BROWSER, "148.163.130.2", m.SCANNER_NETWORK),
    ("clicked", "GET", BROWSER, "17.58.100.7", ""),  # Apple's network clicks like anyone: MPP only opens
    ("clicked", "GET", BROWSER, "203.0.113.9", ""),
    ("opened", "GET", BROWSER, "2001:db8::1", ""),
])
def test_each_request_rule(kind, method, agent, ip, reason) -> None:
    verdict = m.judge_request(kind=kind, method=method, user_agent=agent, ip=ip)
    assert verdict == (m.Verdict(True, reason) if reason else m.HUMAN)


def test_too_soon_after_delivery() -> None:
    sent = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)
    assert m.is_too_soon(sent, sent + timedelta(seconds=2), seconds=10)
    assert not m.is_too_soon(sent, sent + timedelta(seconds=10), seconds=10)
    assert not m.is_too_soon(None, sent, seconds=10)


def _send(session, *, sent_ago: float, campaign: Campaign | None = None, **contact) -> Send:
    if campaign is None:
        campaign = Campaign(name="c", subject="s", html="h", status="sending")
        session.add(campaign)
        session.flush()
    person = make_contact(session, consent=None, **contact)
    send = Send(campaign_id=campaign.id, contact_id=person.id, state="sent",
                sent_at=datetime.now(timezone.utc) - timedelta(seconds=sent_ago))
    session.add(send)
    session.flush()
    return send


def test_a_click_seconds_after_delivery_is_a_scanner(session) -> None:
    send = _send(session, sent_ago=2)
    event = record_click(session, send_id=send.id, url="https://x.example/a", user_agent=BROWSER)
    assert (event.machine, event.machine_reason) == (True, m.TOO_SOON)
    assert session.get(Contact, send.contact_id).last_engaged_at is None
    later = record_click(session, send_id=send.id, url="https://x.example/a", user_agent=BROWSER,
                         now=datetime.now(timezone.utc) + timedelta(minutes=5))
    assert not later.machine and session.get(Contact, send.contact_id).last_engaged_at is not None
    assert event.data["first"] and later.data["first"]  # the first of each verdict


def test_every_link_at_once_turns_the_whole_burst_into_a_machine(session) -> None:
    send = _send(session, sent_ago=3600)
    contact = session.get(Contact, send.contact_id)
    before = datetime.now(timezone.utc) - timedelta(days=3)
    contact.last_engaged_at = before
    start = datetime.now(timezone.utc)
    first = record_click(session, send_id=send.id, url="https://x.example/a", user_agent=BROWSER, now=start)
    second = record_click(session, send_id=send.id, url="https://x.example/b", user_agent=BROWSER,
                          now=start + timedelta(seconds=1))
    assert not first.machine and not second.machine and contact.last_engaged_at == second.occurred_at
    # The roll-up folds the two as people before the third link arrives; the counters follow the verdict.
    roll_up_events(session)
    third = record_click(session, send_id=send.id, url="https://x.example/c", user_agent=BROWSER,
                         now=start + timedelta(seconds=2))
    assert [(e.machine, e.machine_reason) for e in (first, second, third)] == [(True, m.ALL_LINKS)] * 3
    assert contact.last_engaged_at == before  # put back as it was before the scanner came
    assert sum(e.data["first"] for e in (first, second, third)) == 1
    roll_up_events(session)
    counters = dict(session.execute(select(InsightCounter.metric, InsightCounter.count).where(
        InsightCounter.campaign_id == send.campaign_id, InsightCounter.dimension == "all")).all())
    assert counters.get("clicked", 0) == 0 and counters.get("clicked:machine") == 1
    rates = campaign_rates(session, campaign_id=send.campaign_id)
    assert (rates.clicked, rates.machine_clicked) == (0, 1)


def test_two_links_a_second_apart_and_the_same_link_twice_are_a_person(session) -> None:
    send = _send(session, sent_ago=3600)
    start = datetime.now(timezone.utc)
    for i, url in enumerate(("https://x.example/a", "https://x.example/b", "https://x.example/a")):
        event = record_click(session, send_id=send.id, url=url, user_agent=BROWSER, now=start + timedelta(seconds=i))
        assert not event.machine


def test_the_trap_link_marks_its_burst(session) -> None:
    send = _send(session, sent_ago=3600)
    start = datetime.now(timezone.utc)
    before = record_click(session, send_id=send.id, url="https://x.example/a", user_agent=BROWSER, now=start)
    trap = record_click(session, send_id=send.id, url="https://x.example/", user_agent=BROWSER, trap=True,
                        now=start + timedelta(seconds=1))
    after = record_click(session, send_id=send.id, url="https://x.example/b", user_agent=BROWSER,
                         now=start + timedelta(seconds=2))
    assert [(e.machine, e.machine_reason) for e in (before, trap, after)] == [(True, m.TRAP_LINK)] * 3
    assert session.get(Contact, send.contact_id).last_engaged_at is None
    # A person coming back later is a person again.
    back = record_click(session, send_id=send.id, url="https://x.example/a", user_agent=BROWSER,
                        now=start + timedelta(minutes=10))
    assert not back.machine and back.data["first"]


def test_opens_carry_a_verdict_and_never_move_last_engaged(session) -> None:
    send = _send(session, sent_ago=3600)
    proxy = record_open(session, send_id=send.id, user_agent="Mozilla/5.0", ip="17.58.1.2")
    person = record_open(session, send_id=send.id, user_agent=BROWSER, ip="203.0.113.5")
    assert (proxy.machine, proxy.machine_reason) == (True, m.APPLE_MPP) and not person.machine
    assert session.get(Contact, send.contact_id).last_engaged_at is None
    rates = campaign_rates(session, campaign_id=send.campaign_id)
    assert (rates.opened, rates.machine_opened) == (1, 1)


@pytest.fixture
def tracked(runtime):
    runtime.replace_settings(runtime.settings.replace(open_tracking=True, base_url="https://mail.example"))
    with TestClient(create_app(runtime), base_url="https://mail.example") as client:
        yield client


def _path(url: str) -> str:
    return re.sub(r"^https://mail\.example", "", url)


def test_machines_do_not_count_as_engagement_people_do(runtime, tracked) -> None:
    keys = runtime.settings.secret_keys
    with transaction(runtime.factory) as s:
        mpp = _send(s, sent_ago=3600, email="mpp@buyer.example")
        campaign = s.get(Campaign, mpp.campaign_id)
        scanner = _send(s, sent_ago=2, campaign=campaign, email="scanned@buyer.example")
        trapped = _send(s, sent_ago=3600, campaign=campaign, email="trapped@buyer.example")
        person = _send(s, sent_ago=3600, campaign=campaign, email="person@buyer.example")
        ids = {"mpp": mpp.id, "scanner": scanner.id, "trapped": trapped.id, "person": person.id}
    # An Apple MPP open: the pixel, fetched by Apple's proxy.
    pixel = tracked.get(f"/o/{make_open_token(keys, ids['mpp'])}.gif", headers={"User-Agent": "Mozilla/5.0"})
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
    assert "no-store" in pixel.headers["cache-control"] and pixel.content.startswith(b"GIF89a")
    # A Safe Links scanner 2 s after delivery, a trap-link click, and a person: all redirected alike.
    for name, token, agent in (
            ("scanner", make_click_token(keys, ids["scanner"], "https://x.example/a"), SAFE_LINKS),
            ("trapped", make_trap_token(keys, ids["trapped"], "https://x.example/"), BROWSER),
            ("person", make_click_token(keys, ids["person"], "https://x.example/a"), BROWSER)):
        response = tracked.get(f"/r/{token}", headers={"User-Agent": agent}, follow_redirects=False)
        assert response.status_code == 302 and response.headers["location"].startswith("https://x.example/"), name
    head = tracked.head(f"/r/{make_click_token(keys, ids['mpp'], 'https://x.example/b')}",
                        headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert head.status_code == 302
    with transaction(runtime.factory) as s:
        verdicts = {(e.send_id, e.kind): (e.machine, e.machine_reason) for e in s.scalars(select(Event))}
        assert verdicts == {(ids["mpp"], "opened"): (True, m.APPLE_MPP),
                            (ids["scanner"], "clicked"): (True, m.SCANNER_USER_AGENT),
                            (ids["trapped"], "clicked"): (True, m.TRAP_LINK),
                            (ids["person"], "clicked"): (False, ""),
                            (ids["mpp"], "clicked"): (True, m.HEAD_REQUEST)}
        for rule in ("clicked within 1 days", "engaged within 1 days"):
            found = s.scalars(select(Contact.email).where(compile_segment(rule))).all()
            assert found == ["person@buyer.example"], rule
        assert s.scalars(select(Contact.email).where(compile_segment("opened within 1 days"))).all() == []


def test_the_pixel_records_nothing_when_open_tracking_is_off(runtime, tracked) -> None:
    runtime.replace_settings(runtime.settings.replace(open_tracking=False))
    with transaction(runtime.factory) as s:
        send_id = _send(s, sent_ago=3600).id
    response = tracked.get(f"/o/{make_open_token(runtime.settings.secret_keys, send_id)}.gif")
    assert response.status_code == 200 and response.content.startswith(b"GIF89a")
    assert tracked.get("/o/forged.gif").status_code == 404
    with transaction(runtime.factory) as s:
        assert s.scalars(select(Event)).all() == []


def test_reports_show_people_and_machines_and_opens_only_when_tracked(session) -> None:
    send = _send(session, sent_ago=3600, country="DE")
    campaign = session.get(Campaign, send.campaign_id)
    other = _send(session, sent_ago=3600, campaign=campaign, country="DE")
    record_click(session, send_id=send.id, url="https://x.example/a", user_agent=BROWSER)
    record_click(session, send_id=other.id, url="https://x.example/a", user_agent=SAFE_LINKS)
    report = build_report(session, campaign_id=campaign.id)
    (row,) = report["campaigns"]
    assert (row["clicked"], row["machine_clicked"], report["opens_tracked"]) == (1, 1, False)
    (de,) = report["by"]["country"]
    assert (de["clicked"], de["machine_clicked"]) == (1, 1)
    page = render_html(report, company="Bright")
    assert "clicks (people)" in page and "clicks (machines)" in page and "opens" not in page
    record_open(session, send_id=send.id, user_agent=GMAIL_PROXY)
    report = build_report(session, campaign_id=campaign.id)
    assert report["opens_tracked"] and report["campaigns"][0]["machine_opened"] == 1
    assert "opens (machines)" in render_html(report, company="Bright")
