"""Messages built in code — alerts, recommendations, sender-domain findings, settings help and errors — in the
reader's language in the admin: Chinese for a zh_Hans user, English (as the CLI and API print) for an English one."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Alert, utcnow
from sendwell.db.session import transaction
from sendwell.feedback.signals import fix_for
from sendwell.flows import run_hygiene, schedule_sending, start_due_campaigns
from sendwell.insight.alerts import (
    REPORTED,
    Thresholds,
    check_campaign,
    raise_sender_alert,
)
from tests.helpers import make_contact
from tests.insight.test_alerts import add_events, make_sent_campaign
from tests.web.admin.conftest import page_csrf


@pytest.fixture
def alerts_and_advice(runtime) -> int:
    """A paused campaign with an opt-out spike driven by one region, two sender alerts and two recommendations."""
    with transaction(runtime.factory) as s:
        campaign, contacts = make_sent_campaign(
            s, delivered=400, status="sending", name="Spring catalogue",
            contact_fields=lambda i: {"region": "eu" if i < 100 else "us", "stage": "prospect"})
        add_events(s, campaign, contacts, "unsubscribed", 10)
        for reason in ("too_many", "too_many", "too_many", "situation_changed", "situation_changed",
                       "situation_changed"):
            contact = contacts.pop(0)
            add_events(s, campaign, [contact], "unsubscribe_reason", 1, reason=reason)
        [spike] = check_campaign(s, campaign_id=campaign.id, thresholds=Thresholds(min_sample=100))
        assert spike.data["paused"] and spike.data["driver"]["value"] == "eu"
        fix = fix_for("5.7.26")
        raise_sender_alert(s, provider="Google", topic=fix.topic, fix=fix.fix, status="5.7.26", reason="",
                           severity="critical", domain="gmail.com", campaign_id=campaign.id)
        raise_sender_alert(s, provider="Microsoft", topic="dmarc:198.51.100.7", fix="", status=None, reason="",
                           severity="warning", source="dmarc", outcome=REPORTED,
                           fix_message={"template": "source %(ip)s fails DKIM alignment: sign with d=%(domain)s",
                                        "params": {"ip": "198.51.100.7", "domain": "bright-lighting.example"}})
        return campaign.id


def text_of(page) -> str:
    assert page.status_code == 200, page.text
    return html.unescape(page.text)


def test_alerts_and_recommendations_read_in_chinese(as_role, alerts_and_advice) -> None:
    client = as_role("viewer", "zh_Hans")
    page = text_of(client.get("/admin/dashboard"))
    assert "“Spring catalogue”的退订率为 2.500%（400 封中 10 封），高于严重阈值 1.000%" in page
    assert "主要来自地区 = 欧盟及欧洲经济区（10.000%，100 封中 10 封）；活动已暂停" in page
    assert "Google 拒收了邮件：为邮件做身份验证：用发件域名做 DKIM 签名" in page
    assert ("Microsoft 报告邮件未通过 DMARC，但仍已投递：来源 198.51.100.7 的 DKIM 未对齐：请用 "
            "d=bright-lighting.example 签名。没有邮件被拒收") in page
    assert "减少发给“潜在客户”阶段的邮件" in page and "有 3 人处于“潜在客户”阶段" in page and "部分退订者换了职位或业务" in page
    for english in ("refused the mail", "the campaign was paused", "driven by", "Send fewer mails",
                    "normal churn", "Recipients were not suppressed"):
        assert english not in page
    report = text_of(client.get(f"/admin/campaigns/{alerts_and_advice}/report"))
    assert "活动已暂停" in report and "Google 拒收了邮件" in report and "the campaign was paused" not in report


def test_alerts_and_recommendations_read_in_english_with_codes_named(as_role, runtime, alerts_and_advice) -> None:
    page = text_of(as_role("viewer").get("/admin/dashboard"))
    # The admin names the region code as its other pages do; the stored text (CLI, API) keeps the code.
    assert (f"unsubscribe rate 2.500% (10 of 400) on campaign {alerts_and_advice} “Spring catalogue” is above the "
            "critical threshold 1.000%; driven by region = EU and EEA (10.000%, 10 of 100); the campaign was "
            "paused") in page
    with transaction(runtime.factory) as s:
        stored = s.scalars(select(Alert.message).where(Alert.kind == "unsubscribe_spike")).one()
    assert "driven by region = eu (10.000%, 10 of 100); the campaign was paused" in stored
    assert "Google refused the mail: authenticate the mail: DKIM-sign it with your From domain" in page
    assert "Microsoft reports that the mail failed DMARC, but delivered it: source 198.51.100.7" in page
    assert "Send fewer mails to the “Prospect” stage" in page and "Some leavers changed role or business" in page
    assert "拒收" not in page and "活动已暂停" not in page


def test_an_alert_stored_without_a_template_shows_its_stored_english(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        s.add(Alert(kind="sender_fault", severity="warning", message="Yahoo refused the mail: slow down.",
                    data={"provider": "Yahoo"}, created_at=utcnow()))
    assert "Yahoo refused the mail: slow down." in text_of(as_role("viewer", "zh_Hans").get("/admin/dashboard"))


def test_settings_help_and_errors_read_in_chinese(as_role) -> None:
    client = as_role("admin", "zh_Hans")
    page = text_of(client.get("/admin/settings"))
    assert 'aria-describedby="help-send_window"' in page
    assert "允许发信的时段，按收件人当地时间，例如 <code>mon-fri 09:00-17:00</code>" in page
    assert "每个客户阶段在滚动周期 <code>PERIOD</code>" in page and "<code>new_lead</code> 即“新线索”阶段" in page
    assert "in the recipient's local time" not in page
    token = page_csrf(client, "/admin/settings")
    for field, value, chinese in [("website", "ftp://x", "SENDWELL_WEBSITE：'ftp://x' 不是 http(s) 网址"),
                                  ("postal_address", "  ", "SENDWELL_POSTAL_ADDRESS：每封营销邮件都必须有"),
                                  ("company_name", "A\u2028B", "不能有换行或控制字符（发现了 U+2028）")]:
        answer = client.post("/admin/settings", data={"csrf_token": token, field: value})
        assert answer.status_code == 400 and chinese in html.unescape(answer.text), (field, answer.text[:400])
    # A message of the settings' own parsers has no template: it stays as written.
    answer = client.post("/admin/settings", data={"csrf_token": token, "send_window": "someday"})
    assert answer.status_code == 400 and "SENDWELL_SEND_WINDOW：" in html.unescape(answer.text)


def test_settings_help_and_errors_read_in_english(as_role) -> None:
    client = as_role("admin")
    page = text_of(client.get("/admin/settings"))
    assert "When mail may go out, in the recipient's local time, such as <code>mon-fri 09:00-17:00</code>" in page
    assert "where <code>new_lead</code> is the stage New lead" in page
    answer = client.post("/admin/settings", data={"csrf_token": page_csrf(client, "/admin/settings"),
                                                  "website": "ftp://x"})
    assert "SENDWELL_WEBSITE: &#39;ftp://x&#39; is not an http(s) URL" in answer.text


def test_hygiene_results_read_in_chinese(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, email="info@importer.example")  # a role address: flagged
        run_hygiene(s, settings=runtime.settings, now=datetime.now(timezone.utc), trigger="cli", dry_run=True)
    chinese = text_of(as_role("viewer", "zh_Hans").get("/admin/hygiene"))
    assert "<td>无需发送</td>" in chinese and "个无效地址已禁发" in chinese and "已记录 0" in chinese
    assert "none needed" not in chinese and "invalid suppressed" not in chinese
    english = text_of(as_role("marketer").get("/admin/hygiene"))
    assert "<td>none needed</td>" in english and "0 invalid suppressed" in english and "0 recorded" in english


def test_a_campaign_that_could_not_start_is_explained_in_chinese(as_role, runtime) -> None:
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    with transaction(runtime.factory) as s:
        make_contact(s)
        campaign = create_campaign(s, settings=runtime.settings, name="Autumn fair", subject="s", html="<p>x</p>")
        schedule_sending(s, settings=runtime.settings, campaign_id=campaign.id, at=start)
    runtime.replace_settings(runtime.settings.replace(postal_address=""))  # CAN-SPAM: no address, no marketing mail
    assert start_due_campaigns(runtime.factory, settings=runtime.settings, now=start + timedelta(seconds=5)) == []
    chinese = text_of(as_role("viewer", "zh_Hans").get("/admin/dashboard"))
    assert f"活动 {campaign.id}（Autumn fair）没有按计划时间开始，已退回草稿：" in chinese
    english = text_of(as_role("marketer").get("/admin/dashboard"))
    assert f"Campaign {campaign.id} (Autumn fair) did not start at its scheduled time and is a draft again: " in english
