"""The report pages: a campaign's opens and clicks in full, its link report and click map, and the daily charts
of the dashboard and the Unsubscribes page, with their tables."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

from sqlalchemy import select

from sendwell.db.models import Campaign, Event, Send
from sendwell.db.session import transaction
from sendwell.insight.tracking import record_click, record_open
from tests.insight.test_alerts import NOW, make_sent_campaign
from tests.insight.test_machines import BROWSER, GMAIL_PROXY, SAFE_LINKS
from tests.web.admin.data import seed_history

PANELS = "https://bright-lighting.example/panels"
SAMPLES = "https://bright-lighting.example/samples"
MAIL = (f'<p>Hello {{{{ first_name }}}}, see <a href="{PANELS}">our 2026 panels</a> and '
        f'<a href="{SAMPLES}">order samples</a>.</p><p>{{{{ unsubscribe_url }}}}</p>')


def clicked_campaign(runtime) -> int:
    """4 delivered; people click the panels 3 times (2 people) and the samples once; a scanner and a proxy too."""
    with transaction(runtime.factory) as s:
        campaign, _ = make_sent_campaign(s, delivered=4, status="finished", name="Spring <panels>")
        campaign.html = MAIL
        sends = list(s.scalars(select(Send.id).where(Send.campaign_id == campaign.id).order_by(Send.id)))
        at = NOW + timedelta(minutes=30)
        person = {"user_agent": BROWSER, "ip": "203.0.113.7"}
        record_click(s, send_id=sends[0], url=PANELS, now=at, **person)
        record_click(s, send_id=sends[0], url=PANELS, now=at + timedelta(hours=1), **person)
        record_click(s, send_id=sends[1], url=PANELS, now=at, **person)
        record_click(s, send_id=sends[1], url=SAMPLES, now=at + timedelta(minutes=2), **person)
        record_click(s, send_id=sends[2], url=PANELS, user_agent=SAFE_LINKS, ip="203.0.113.9", now=at)
        record_open(s, send_id=sends[0], now=at, **person)
        record_open(s, send_id=sends[3], user_agent=GMAIL_PROXY, ip="66.249.84.1", now=at)
        return campaign.id


def _figures(page: str, row: str) -> dict[str, str]:
    cells = re.search(rf'<tr data-row="{row}">(.*?)</tr>', page, re.S).group(1)
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', cells))


def test_the_report_shows_opens_and_clicks_unique_and_total_and_the_links(runtime, as_role) -> None:
    campaign_id = clicked_campaign(runtime)
    page = as_role("viewer").get(f"/admin/campaigns/{campaign_id}/report").text
    assert _figures(page, "clicks") == {"people": "2", "people_total": "4", "rate": "50.00%", "machines": "1",
                                        "machines_total": "1"}
    assert _figures(page, "opens") == {"people": "1", "people_total": "1", "rate": "25.00%", "machines": "1",
                                       "machines_total": "1"}
    assert "<td>Link scanner</td><td>1</td><td>0</td><td>1</td><td>0</td>" in page
    links = page[page.index('id="link-report"'):]
    assert links.index(f'data-url="{PANELS}"') < links.index(f'data-url="{SAMPLES}"')
    assert "<strong>our 2026 panels</strong>" in links and "75.00%" in links and "25.00%" in links
    assert f'href="/admin/campaigns/{campaign_id}/links"' in links


def test_the_link_report_and_click_map(runtime, as_role) -> None:
    campaign_id = clicked_campaign(runtime)
    viewer = as_role("viewer")
    response = viewer.get(f"/admin/campaigns/{campaign_id}/links")
    assert response.status_code == 200
    page = response.text
    assert "Spring &lt;panels&gt;" in page and "Spring <panels>" not in page
    frame = re.search(r'<iframe id="click-map" sandbox="" title="[^"]*" srcdoc="([^"]*)"', page)
    assert frame, "no sandboxed click map"
    mail = html.unescape(frame.group(1))
    assert f'<a href="{PANELS}">our 2026 panels</a><span style=' in mail
    assert 'title="3 clicks by 2 people">75%</span>' in mail and ">25%</span>" in mail
    assert "<script" not in mail
    zh = as_role("marketer", language="zh_Hans").get(f"/admin/campaigns/{campaign_id}/links").text
    assert "链接与点击分布图" in zh and "2 人点击 3 次" in html.unescape(zh)
    assert viewer.get("/admin/campaigns/999999/links").status_code == 404


def _chart(page: str, name: str) -> dict:
    return json.loads(html.unescape(re.search(
        rf'<script type="application/json" id="{name}">(.*?)</script>', page, re.S).group(1)))


def test_the_dashboard_chart_has_every_day_and_five_figures(runtime, as_role) -> None:
    with transaction(runtime.factory) as s:
        campaign = seed_history(s, days=3)
        contact_id = s.scalar(select(Send.contact_id).where(Send.campaign_id == campaign.id))
        s.add(Event(kind="clicked", contact_id=contact_id, campaign_id=campaign.id, machine=False,
                    data={"first": True}, occurred_at=campaign.finished_at))
    page = as_role("viewer").get("/admin/dashboard").text
    chart = _chart(page, "trend-data")
    # Nov 1–3 delivered, a click on Nov 4: a week up to the last busy day, quiet days as zeros.
    assert (chart["days"][0], chart["days"][-1], len(chart["days"])) == ("2026-10-29", "2026-11-04", 7)
    series = {s["label"]: s["values"] for s in chart["series"]}
    assert list(series) == ["Sent", "Opens by people", "Clicks by people", "Unsubscribes", "Complaints"]
    day = chart["days"].index("2026-11-01")
    assert (series["Sent"][day], series["Unsubscribes"][day], series["Complaints"][day]) == (60, 1, 1)
    assert series["Clicks by people"][chart["days"].index("2026-11-04")] == 1
    assert {a["scale"] for a in chart["axes"]} == {"mails", "optouts"}
    table = page[page.index('id="trend-table"'):]
    assert '<tr><th scope="row">2026-11-02</th><td>60</td><td>0</td><td>0</td><td>2</td><td>0</td><td>3.33 %</td>' in table
    zh = _chart(as_role("marketer", language="zh_Hans").get("/admin/dashboard").text, "trend-data")
    assert [s["label"] for s in zh["series"]][-1] == "投诉"


def test_the_unsubscribes_page_charts_opt_outs_per_day(runtime, as_role) -> None:
    with transaction(runtime.factory) as s:
        seed_history(s, days=3)
    page = as_role("viewer").get("/admin/unsubscribes").text
    chart = _chart(page, "optout-data")
    assert [s["key"] for s in chart["series"]] == ["unsubscribed", "complained"]
    unsubscribed = chart["series"][0]["values"]
    assert unsubscribed[chart["days"].index("2026-11-03")] == 3 and sum(unsubscribed) == 6
    assert '<tr><th scope="row">2026-11-03</th><td>3</td><td>1</td></tr>' in page
    assert '<script src="/admin/static/uPlot.iife.min.js"' in page


def test_a_campaign_without_clicks_has_an_empty_link_report(runtime, as_role) -> None:
    with transaction(runtime.factory) as s:
        s.add(Campaign(name="Draft", subject="s", html="<p>No links</p>", status="draft"))
        campaign_id = s.scalar(select(Campaign.id).where(Campaign.name == "Draft"))
    page = as_role("viewer").get(f"/admin/campaigns/{campaign_id}/report").text
    assert "The mail has no tracked links." in page
