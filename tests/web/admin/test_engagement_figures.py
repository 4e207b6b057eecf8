"""The campaign report page shows clicks (and opens) by people and by machines apart, in English and Chinese."""

from __future__ import annotations

import re

from sqlalchemy import select

from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.i18n import translations
from sendwell.insight import machines
from sendwell.insight.tracking import record_click, record_open
from sendwell.web.admin.campaigns import MACHINE_SIGNS, OTHER_SIGN
from tests.insight.test_alerts import make_sent_campaign
from tests.insight.test_machines import BROWSER, GMAIL_PROXY, SAFE_LINKS


def _clicked_campaign(runtime, *, opens: bool = False) -> int:
    """Three delivered mails: a person clicks one, a link scanner clicks another (and a proxy opens one)."""
    with transaction(runtime.factory) as s:
        campaign, _ = make_sent_campaign(s, delivered=3, status="finished", name="Spring catalogue")
        send_ids = list(s.scalars(select(Send.id).where(Send.campaign_id == campaign.id).order_by(Send.id)))
        record_click(s, send_id=send_ids[0], url="https://bright-lighting.example/panels", user_agent=BROWSER,
                     ip="203.0.113.7")
        record_click(s, send_id=send_ids[1], url="https://bright-lighting.example/panels", user_agent=SAFE_LINKS,
                     ip="203.0.113.8")
        if opens:
            record_open(s, send_id=send_ids[2], user_agent=GMAIL_PROXY, ip="66.249.84.1")
        return campaign.id


def _metric(page: str, name: str) -> int:
    match = re.search(rf'data-metric="{name}">(\d+)<', page)
    assert match, f"no {name} figure on the page"
    return int(match.group(1))


def test_people_and_machine_clicks_in_english(runtime, as_role) -> None:
    campaign_id = _clicked_campaign(runtime)
    page = as_role("viewer").get(f"/admin/campaigns/{campaign_id}/report")
    assert page.status_code == 200
    assert "Clicks by people" in page.text and "Clicks by machines (link scanners)" in page.text
    assert (_metric(page.text, "clicked"), _metric(page.text, "machine_clicked")) == (1, 1)
    assert "33.33% of delivered" in page.text
    # The sign that gave the scanner away, in words; no opens were recorded, so no opens are shown.
    assert "<td>Link scanner</td><td>1</td>" in page.text
    assert machines.SCANNER_USER_AGENT not in page.text
    assert "Opens by people" not in page.text and 'data-metric="opened"' not in page.text


def test_people_and_machine_clicks_in_chinese(runtime, as_role) -> None:
    campaign_id = _clicked_campaign(runtime)
    page = as_role("viewer", language="zh_Hans").get(f"/admin/campaigns/{campaign_id}/report")
    assert page.status_code == 200 and '<html lang="zh-Hans">' in page.text
    assert "真人点击" in page.text and "机器点击（链接扫描）" in page.text
    assert (_metric(page.text, "clicked"), _metric(page.text, "machine_clicked")) == (1, 1)
    assert "<td>链接扫描器</td><td>1</td>" in page.text and "占已送达的 33.33%" in page.text
    assert "Clicks by people" not in page.text and machines.SCANNER_USER_AGENT not in page.text


def test_opens_appear_once_any_are_recorded(runtime, as_role) -> None:
    campaign_id = _clicked_campaign(runtime, opens=True)
    page = as_role("viewer").get(f"/admin/campaigns/{campaign_id}/report").text
    assert "Opens by people" in page and "Opens by machines (image proxies)" in page
    assert (_metric(page, "opened"), _metric(page, "machine_opened")) == (0, 1)
    assert "<td>Image proxy (Gmail)</td><td>0</td><td>1</td>" in page
    zh = as_role("marketer", language="zh_Hans").get(f"/admin/campaigns/{campaign_id}/report").text
    assert "真人打开" in zh and "机器打开（图片代理）" in zh and "图片代理（Gmail）" in zh


def test_every_machine_reason_has_words_in_both_languages() -> None:
    reasons = {value for name, value in vars(machines).items()
               if name.isupper() and isinstance(value, str) and name != "APPLE_MPP_USER_AGENT"}
    assert reasons <= set(MACHINE_SIGNS)
    catalog = translations("zh_Hans", "admin")
    untranslated = [text for text in [*MACHINE_SIGNS.values(), OTHER_SIGN] if catalog.gettext(text) == text]
    assert untranslated == []
