"""A campaign's opens and clicks: unique and total, people and machines apart, per machine sign and per link;
and the daily figures the trend charts draw."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from sendwell.db.models import Event, Send
from sendwell.insight.clicks import annotate_links, link_labels
from sendwell.insight.rates import over_time
from sendwell.insight.report import build_report
from sendwell.insight.tracking import record_click, record_open
from tests.insight.test_alerts import NOW, make_sent_campaign
from tests.insight.test_machines import BROWSER, GMAIL_PROXY, SAFE_LINKS

PANELS = "https://bright-lighting.example/panels?ref=mail&amp;lang=en"
PANELS_URL = "https://bright-lighting.example/panels?ref=mail&lang=en"
SAMPLES = "https://bright-lighting.example/samples"
CATALOGUE = "https://bright-lighting.example/catalogue.pdf"
MAIL = (f'<p>Hello {{{{ first_name }}}}, see <a href="{PANELS}" style="color:#06c">our <b>2026 panels</b></a>.</p>'
        f'<p><a href="{SAMPLES}"><img src="https://bright-lighting.example/s.png" alt="Order samples"></a></p>'
        f'<p><a href="{CATALOGUE}">Catalogue</a></p>')
AFTER = NOW + timedelta(minutes=30)  # long after delivery: a person's click, by time


def _campaign(session, delivered: int = 10):
    campaign, _ = make_sent_campaign(session, delivered=delivered, status="finished", name="Spring panels")
    campaign.html = MAIL
    sends = list(session.scalars(select(Send.id).where(Send.campaign_id == campaign.id).order_by(Send.id)))
    return campaign, sends


def _seed(session):
    """10 delivered. People: 3 open (one twice), 2 click the panels (one twice), 1 the samples.
    Machines: Gmail's proxy opens 2 mails, a scanner clicks the panels link in 1 mail."""
    campaign, sends = _campaign(session)
    person = {"user_agent": BROWSER, "ip": "203.0.113.7"}
    for i, send in enumerate(sends[:3]):
        record_open(session, send_id=send, now=AFTER + timedelta(minutes=i), **person)
    record_open(session, send_id=sends[0], now=AFTER + timedelta(hours=2), **person)
    for send in sends[3:5]:
        record_open(session, send_id=send, user_agent=GMAIL_PROXY, ip="66.249.84.1", now=AFTER)
    record_click(session, send_id=sends[0], url=PANELS_URL, now=AFTER + timedelta(minutes=5), **person)
    record_click(session, send_id=sends[0], url=PANELS_URL, now=AFTER + timedelta(hours=1), **person)
    record_click(session, send_id=sends[1], url=PANELS_URL, now=AFTER + timedelta(minutes=6), **person)
    record_click(session, send_id=sends[2], url=SAMPLES, now=AFTER + timedelta(minutes=7), **person)
    record_click(session, send_id=sends[6], url=PANELS_URL, user_agent=SAFE_LINKS, ip="203.0.113.9", now=AFTER)
    return campaign


def test_opens_and_clicks_unique_and_total_people_and_machines_apart(session) -> None:
    campaign = _seed(session)
    data = build_report(session, campaign_id=campaign.id)["engagement"]
    assert data["delivered"] == 10
    assert data["opens"] == {"people": 3, "people_total": 4, "machines": 2, "machines_total": 2, "rate": 0.3}
    assert data["clicks"] == {"people": 3, "people_total": 4, "machines": 1, "machines_total": 1, "rate": 0.3}
    reasons = {r["reason"]: r for r in data["machine_reasons"]}
    assert reasons["google_image_proxy"]["label"] == "Image proxy (Gmail)"
    assert (reasons["google_image_proxy"]["opened"], reasons["google_image_proxy"]["clicked"]) == (2, 0)
    assert reasons["scanner_user_agent"]["label"] == "Link scanner"
    assert (reasons["scanner_user_agent"]["clicked"], reasons["scanner_user_agent"]["clicked_total"]) == (1, 1)


def test_a_report_of_all_campaigns_keeps_its_keys_and_has_no_engagement_block(session) -> None:
    _seed(session)
    data = build_report(session)
    assert data["engagement"] is None
    (row,) = data["campaigns"]
    assert (row["clicked"], row["machine_clicked"], row["opened"], row["machine_opened"]) == (3, 1, 3, 2)


def test_the_link_report_names_each_link_with_its_words(session) -> None:
    campaign = _seed(session)
    links = {k["url"]: k for k in build_report(session, campaign_id=campaign.id)["engagement"]["links"]}
    assert list(links) == [PANELS_URL, SAMPLES, CATALOGUE]  # most clicked first; unclicked links listed too
    panels = links[PANELS_URL]
    assert panels["label"] == "our 2026 panels"
    assert (panels["people"], panels["people_total"], panels["machines"]) == (2, 3, 1)
    assert panels["click_rate"] == 0.2 and panels["share"] == 0.75
    assert links[SAMPLES]["label"] == "Order samples"  # an image link: its alt text
    assert (links[SAMPLES]["people"], links[SAMPLES]["share"]) == (1, 0.25)
    assert (links[CATALOGUE]["people_total"], links[CATALOGUE]["share"]) == (0, 0.0)


def test_trap_link_and_api_clicks_are_not_links_of_the_mail(session) -> None:
    campaign, sends = _campaign(session)
    record_click(session, send_id=sends[0], url="https://bright-lighting.example/t", trap=True, user_agent=BROWSER,
                 ip="203.0.113.7", now=AFTER)
    session.add(Event(kind="clicked", contact_id=None, campaign_id=campaign.id, data={"source": "api"}))
    session.flush()
    data = build_report(session, campaign_id=campaign.id)["engagement"]
    assert {k["url"] for k in data["links"]} == {PANELS_URL, SAMPLES, CATALOGUE}
    assert data["clicks"]["machines_total"] == 1
    assert [r["label"] for r in data["machine_reasons"]] == ["Hidden trap link"]


def test_link_labels_skip_template_tags_and_keep_the_first_words() -> None:
    labels = link_labels('<a href="https://x.example/a">Hi {{ first_name }}!</a><a href=\'https://x.example/a\'>again</a>'
                         '<a href="mailto:sales@x.example">mail us</a>')
    assert labels == {"https://x.example/a": "Hi !"}


def test_the_click_map_puts_a_badge_after_each_link_and_escapes_it() -> None:
    html = annotate_links(MAIL, {PANELS_URL: ("75%", "3 clicks <b>"), SAMPLES: ("25%", "1 click")})
    assert html.count("<span") == 2
    assert '2026 panels</b></a><span style=' in html and ">75%</span>" in html
    assert 'title="3 clicks &lt;b&gt;"' in html
    assert f'<a href="{CATALOGUE}">Catalogue</a></p>' in html  # no figure, no badge
    assert "<script" not in html


def test_over_time_lists_every_day_with_people_not_machines(session) -> None:
    campaign = _seed(session)
    contact_id = session.scalar(select(Send.contact_id).where(Send.campaign_id == campaign.id))
    later = NOW + timedelta(days=3)
    session.add(Event(kind="unsubscribed", contact_id=contact_id, campaign_id=campaign.id, method="one_click",
                      occurred_at=later))
    session.add(Event(kind="complained", contact_id=contact_id, campaign_id=campaign.id, occurred_at=later))
    session.flush()
    days = {d["day"]: d for d in over_time(session)}
    assert list(days)[0] <= "2026-10-29" and list(days)[-1] == "2026-11-04"  # at least a week, no day left out
    first = days["2026-11-01"]
    assert (first["delivered"], first["opened"], first["clicked"]) == (10, 3, 3)
    assert days["2026-11-02"] == {"day": "2026-11-02", "delivered": 0, "opened": 0, "clicked": 0,
                                  "unsubscribed": 0, "complained": 0}
    assert (days["2026-11-04"]["unsubscribed"], days["2026-11-04"]["complained"]) == (1, 1)


def test_over_time_of_a_single_busy_day_is_still_a_line(session) -> None:
    make_sent_campaign(session, delivered=4, status="finished")
    days = over_time(session)
    assert len(days) == 7 and days[-1] == {"day": "2026-11-01", "delivered": 4, "opened": 0, "clicked": 0,
                                           "unsubscribed": 0, "complained": 0}
    assert over_time(session, days=3)[0]["day"] == "2026-10-26"  # the shortest window is a week


def test_over_time_keeps_the_last_days_only(session) -> None:
    campaign, _ = make_sent_campaign(session, delivered=1, status="finished")
    contact_id = session.scalar(select(Send.contact_id).where(Send.campaign_id == campaign.id))
    session.add(Event(kind="unsubscribed", contact_id=contact_id, campaign_id=campaign.id, method="one_click",
                      occurred_at=datetime(2026, 3, 1, tzinfo=timezone.utc)))
    session.flush()
    days = over_time(session, days=30)
    assert (days[0]["day"], days[-1]["day"], len(days)) == ("2026-10-03", "2026-11-01", 30)


def test_the_report_command_prints_opens_clicks_signs_and_links(runtime) -> None:
    from click.testing import CliRunner

    from sendwell.cli.main import cli
    from sendwell.db.session import transaction
    from tests.insight.test_report import cli_env

    with transaction(runtime.factory) as s:
        campaign_id = _seed(s).id
    result = CliRunner().invoke(cli, ["report", "--campaign", str(campaign_id)], env=cli_env(runtime),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Opens and clicks" in out and "How the machines were recognised" in out and "Image proxy (Gmail)" in out
    clicks = next(line for line in out.splitlines() if line.startswith("│ clicks"))
    assert [c.strip() for c in clicks.split("│")][1:-1] == ["clicks", "3", "4", "30.00%", "1", "1"]
    assert "our 2026 panels" in out and "75%" in out


def test_the_html_report_of_a_campaign_has_its_opens_clicks_and_links(session) -> None:
    from sendwell.insight.report import render_html

    campaign = _seed(session)
    page = render_html(build_report(session, campaign_id=campaign.id), company="Bright <Lighting>")
    assert "<h2>Opens and clicks</h2>" in page and "<td>clicks</td><td>3</td><td>4</td><td>30.00%</td>" in page
    assert "<td>Image proxy (Gmail)</td><td>0</td><td>2</td>" in page
    assert f"our 2026 panels<br>{PANELS_URL.replace('&', '&amp;')}</td><td>2</td><td>3</td>" in page
    assert "<script" not in page
    assert "<h2>Links</h2>" not in render_html(build_report(session), company="x")  # all campaigns: no link report
