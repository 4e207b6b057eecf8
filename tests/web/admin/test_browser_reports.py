"""The report pages in real headless Chromium: the link report and click map after clicks, and the daily charts
drawn by uPlot on the dashboard and the Unsubscribes page. Screenshots in English, Chinese and on a phone."""

from __future__ import annotations

import pytest

from sendwell.db.session import transaction
from tests.web.admin.data import seed_history
from tests.web.admin.test_browser import chromium, page, shoot, sign_in, site  # noqa: F401 (fixtures)
from tests.web.admin.test_reports_pages import PANELS, clicked_campaign

pytestmark = pytest.mark.browser


def _seed(runtime) -> int:
    with transaction(runtime.factory) as s:
        seed_history(s, days=5, comment="Every week is too often for us")
    return clicked_campaign(runtime)


def test_link_report_click_map_and_daily_charts(page, make_user, runtime, request) -> None:  # noqa: F811
    campaign_id = _seed(runtime)
    sign_in(page, make_user("viewer"))
    page.wait_for_selector("#trend-chart[data-rendered=true] canvas")
    legend = page.locator("#trend-chart .u-legend").inner_text()
    assert "Sent" in legend and "Clicks by people" in legend and "Complaints" in legend
    shoot(page, "dashboard", request)

    page.goto(f"/admin/campaigns/{campaign_id}/report")
    row = page.locator(f'#link-report tr[data-url="{PANELS}"]')
    assert row.locator('[data-figure="people"]').inner_text() == "2"
    assert row.locator('[data-figure="share"]').inner_text() == "75.00%"
    assert page.locator('#engagement-detail tr[data-row="clicks"] [data-figure="machines"]').inner_text() == "1"
    shoot(page, "campaign-report", request)

    page.get_by_role("link", name="See the click map").click()
    mail = page.frame_locator("#click-map")
    badge = mail.locator("a", has_text="our 2026 panels").locator("xpath=following-sibling::span[1]")
    assert badge.inner_text() == "75%"
    assert mail.locator("script").count() == 0
    shoot(page, "campaign-links", request)

    page.goto("/admin/unsubscribes")
    page.wait_for_selector("#optout-chart[data-rendered=true] canvas")
    assert "Unsubscribes" in page.locator("#optout-chart .u-legend").inner_text()
    shoot(page, "unsubscribes", request)


def test_the_report_pages_in_chinese_and_on_a_phone(chromium, site, make_user, runtime, request) -> None:  # noqa: F811
    campaign_id = _seed(runtime)
    pages = {"dashboard": "/admin/dashboard", "campaign-report": f"/admin/campaigns/{campaign_id}/report",
             "campaign-links": f"/admin/campaigns/{campaign_id}/links", "unsubscribes": "/admin/unsubscribes"}
    for suffix, language, width in (("-zh_Hans", "zh_Hans", 1280), ("-phone", "en", 390)):
        context = chromium.new_context(base_url=site, viewport={"width": width, "height": 900}, locale="en-GB")
        tab = context.new_page()
        tab.set_default_timeout(15000)
        sign_in(tab, make_user("viewer", email=f"viewer{suffix}@bright-lighting.example", language=language))
        for name, path in pages.items():
            tab.goto(path)
            if name in ("dashboard", "unsubscribes"):
                tab.wait_for_selector(".chart[data-rendered=true] canvas")
            if name == "campaign-links":
                tab.frame_locator("#click-map").locator("a + span").first.wait_for()  # the mail has loaded
                tab.locator("#click-map").scroll_into_view_if_needed()  # Chromium paints no offscreen frame
            shoot(tab, name + suffix, request)
        if language == "zh_Hans":
            assert tab.locator("h2#daily-h").inner_text() == "每日退订与投诉"
        context.close()
