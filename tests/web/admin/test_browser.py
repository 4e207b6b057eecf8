"""The admin in real headless Chromium (Debian's, driven by Playwright): the marketer's main paths.

Screenshots go to docs/screenshots/admin-*.png (or SENDWELL_SCREENSHOTS_DIR) from the SQLite run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact
from tests.web.admin.conftest import PASSWORD
from tests.web.admin.data import seed_history

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SENDWELL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("SENDWELL_SCREENSHOTS_DIR", Path(__file__).resolve().parents[3] / "docs" / "screenshots"))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser per module; skipped where chromium is missing, a failure in CI."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if os.environ.get("CI"):
            pytest.fail(f"chromium is not installed at {CHROMIUM}; scripts/services.sh should have installed it")
        pytest.skip("chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the playwright package is missing (pip install -e '.[test]')")
        pytest.skip("playwright is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def site(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with BackgroundServer(app, free_port()) as server:
        yield server.url


@pytest.fixture
def page(chromium, site) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    context = chromium.new_context(base_url=site, viewport={"width": 1280, "height": 900}, locale="en-GB")
    tab = context.new_page()
    tab.set_default_timeout(15000)
    yield tab
    context.close()


def shoot(page, name: str, request) -> None:  # type: ignore[no-untyped-def]
    if "sqlite" in request.node.callspec.id:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"admin-{name}.png"), full_page=True)


def sign_in(page, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/admin/dashboard")
    assert "/admin/login" in page.url
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/dashboard")


def test_login_and_the_dashboard_chart_draws_the_data(page, make_user, runtime, request) -> None:
    with transaction(runtime.factory) as s:
        seed_history(s, comment="Every week is too often for us")
    page.goto("/admin/login")
    shoot(page, "login", request)
    page.get_by_label("Email address").fill(make_user("viewer"))
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong email address or password."
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/dashboard")
    page.wait_for_selector("#trend-chart[data-rendered=true] canvas")
    # The canvas has drawn lines: count the pixels that are not blank.
    painted = page.evaluate("""() => {
        const c = document.querySelector('#trend-chart canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return {n, w: c.width, h: c.height};
    }""")
    assert painted["w"] > 200 and painted["h"] > 100 and painted["n"] > 500, painted
    # Both series are in the legend, and the audience bars are laid out with a width.
    legend = page.locator(".u-legend").inner_text()
    assert "Sent" in legend and "Unsubscribes" in legend and "Complaints" in legend
    bar = page.locator('figure[data-dimension="region"] .bar.unsub').first.bounding_box()
    assert bar and bar["width"] > 2
    assert page.locator('[data-metric="unsubscribe_rate"]').inner_text() == "5.00%"
    shoot(page, "dashboard", request)
    page.goto("/admin/contacts")
    page.get_by_label("Search").fill("importer")  # every seeded company, whatever the id counter has reached
    page.wait_for_url("**q=importer**")
    assert page.locator('a[href^="/admin/contacts/"]').count() > 0  # the search found the seeded buyers
    shoot(page, "contacts", request)
    page.get_by_role("link", name="Unsubscribes").click()
    assert page.locator('[data-reason="too_many"]').inner_text() == "15"
    shoot(page, "unsubscribes", request)


def test_a_form_without_its_csrf_token_is_refused(page, make_user, request) -> None:
    sign_in(page, make_user("admin"))
    page.get_by_role("link", name="Settings").click()
    assert "v=DKIM1" in page.locator("pre.record").inner_text()
    shoot(page, "settings", request)
    page.goto("/admin/dashboard")
    # Keyboard first: the skip link is the first stop and becomes visible.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    # A forged form: the same POST without the token (as another site would send it).
    page.evaluate("""() => { document.querySelector('form[action="/admin/language"] input[name=csrf_token]').remove(); }""")
    page.select_option("#language-select", "zh_Hans")
    with page.expect_response("**/admin/language") as answer:
        page.get_by_role("button", name="Switch").click()
    assert answer.value.status == 403
    assert "CSRF" in page.get_by_role("alert").inner_text()
    page.goto("/admin/dashboard")
    assert page.locator("h1").inner_text() == "Dashboard"  # nothing changed


def test_import_with_a_bad_row(page, make_user, runtime, request, tmp_path) -> None:
    sign_in(page, make_user("marketer"))
    csv_file = tmp_path / "canton-fair.csv"
    csv_file.write_text("邮箱,名字,公司,国家,行业\n"
                        "anna@licht.example,Anna,Licht GmbH,DE,lighting\n"
                        "wei@@bad,Wei,Bad Address Co,CN,lighting\n"
                        "joe@bulbs.example,Joe,Bulbs Inc,US,lighting\n", encoding="utf-8")
    page.get_by_role("link", name="Import").click()
    page.get_by_label("CSV or Excel file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and map columns").click()
    assert page.locator("#map_0").input_value() == "email"  # 邮箱 recognised
    assert page.locator("#map_2").input_value() == "company"
    page.get_by_label("Consent of these contacts").select_option("express")
    page.get_by_label("Source (where the addresses come from)").fill("Canton Fair 2026")
    page.get_by_role("button", name="Check (dry run)").click()
    rejected = page.locator("table.rejected tbody tr")
    assert rejected.count() == 1
    assert rejected.first.locator("td").nth(0).inner_text() == "3"
    assert rejected.first.locator("td").nth(1).inner_text() == "Email address email"  # its label and its code
    shoot(page, "import", request)
    page.get_by_label("Skip rejected rows").check()
    page.get_by_role("button", name="Import", exact=True).click()
    assert "2 new and 0 updated contacts were saved." in page.locator("#import-result").inner_text()


def test_campaign_create_lint_error_fix_and_send(page, make_user, runtime, request) -> None:
    with transaction(runtime.factory) as s:
        for country in ("DE", "US", "CN"):
            make_contact(s, country=country, source="Canton Fair 2026")
    sign_in(page, make_user("marketer"))
    page.goto("/admin/campaigns")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name", exact=True).fill("Spring LED panels")
    page.get_by_label("Subject").fill("Our new LED panels")
    page.get_by_label("HTML body").fill("<p>Dear {{ frist_name }}, see our new panels.</p>")
    page.get_by_role("button", name="Create draft").click()
    page.wait_for_selector('[data-lint="blocked"]')
    assert "frist_name" in page.locator("#lint").inner_text()
    # Fix it: the live lint (htmx) turns green without saving.
    page.get_by_label("HTML body").fill("<p>Dear {{ first_name }}, see our new panels.</p>")
    page.wait_for_selector('[data-lint="ok"]')
    shoot(page, "campaign", request)
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_selector("text=Saved.")
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_role("button", name="Send to 3 people").click()  # the confirmation step with the plan
    page.wait_for_selector("text=Sending started.")
    assert page.locator("#campaign-status").inner_text() == "Sending"
    assert int(page.locator('[data-state="queued"]').inner_text()) == 3
    page.get_by_role("link", name="Preview per region and language").click()
    assert page.locator("iframe").count() >= 3


def test_switching_to_chinese(page, make_user, runtime, request) -> None:
    with transaction(runtime.factory) as s:
        seed_history(s, days=3, comment="每周一封太多了")
    sign_in(page, make_user("marketer"))
    page.select_option("#language-select", "zh_Hans")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_selector("h1:has-text('仪表盘')")
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    page.wait_for_selector("#trend-chart[data-rendered=true] canvas")
    assert "退订" in page.locator(".u-legend").inner_text() and "投诉" in page.locator(".u-legend").inner_text()
    shoot(page, "dashboard-zh_Hans", request)
    page.get_by_role("link", name="联系人").click()
    assert page.locator("h1").inner_text() == "联系人"
    shoot(page, "contacts-zh_Hans", request)


def test_schedule_in_the_browsers_time_zone_and_the_hygiene_and_settings_pages(chromium, site, make_user, runtime,
                                                                                request) -> None:
    from datetime import datetime, timedelta, timezone

    from sendwell.campaigns.service import create_campaign
    from sendwell.db.models import Campaign

    with transaction(runtime.factory) as s:
        make_contact(s, country="DE")
        campaign_id = create_campaign(s, settings=runtime.settings, name="Autumn catalogue", subject="Catalogue",
                                      html="<p>Dear {{ first_name }}, our catalogue.</p>").id
    # A marketer in Shanghai: the browser's own zone travels with the typed time.
    context = chromium.new_context(base_url=site, viewport={"width": 1280, "height": 900}, locale="en-GB",
                                   timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        sign_in(page, make_user("admin"))
        page.goto(f"/admin/campaigns/{campaign_id}")
        day = (datetime.now(timezone.utc) + timedelta(days=2)).astimezone(timezone(timedelta(hours=8)))
        page.fill("#schedule-at", day.strftime("%Y-%m-%dT09:30"))
        page.get_by_role("button", name="Schedule", exact=True).click()
        page.get_by_role("button", name="Schedule for 1 person").click()  # after the estimate
        page.wait_for_selector("text=Scheduled.")
        assert "(Asia/Shanghai)" in page.locator("#starts-at").inner_text()
        with transaction(runtime.factory) as s:
            campaign = s.get(Campaign, campaign_id)
            assert campaign.status == "scheduled"
            assert campaign.scheduled_at == datetime.fromisoformat(day.strftime("%Y-%m-%dT09:30") + "+08:00")
        shoot(page, "campaign-scheduled", request)
        from sendwell.flows import run_hygiene

        with transaction(runtime.factory) as s:
            make_contact(s, email="sales@importer-gmbh.example")  # a role address for the report
            s.flush()
            run_hygiene(s, settings=runtime.settings, trigger="scheduler")
        page.get_by_role("link", name="Hygiene").click()
        page.wait_for_selector("h1:has-text('List hygiene')")
        assert "addresses checked" in page.locator("details[open]").inner_text()
        shoot(page, "hygiene", request)
        page.get_by_role("link", name="Settings").click()
        page.fill("#set-postal_address", "1 Harbour Road, Ningbo 315000, China")
        page.get_by_role("button", name="Save settings").click()
        page.wait_for_selector("text=Saved.")
        assert runtime.settings.postal_address == "1 Harbour Road, Ningbo 315000, China"
        shoot(page, "settings", request)
    finally:
        context.close()
