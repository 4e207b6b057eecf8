"""In Chromium: three admin bugs that were fixed stay fixed, each seen as the marketer saw it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from sendwell.db.models import Campaign
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.web.admin.test_browser import chromium, page, sign_in, site
from tests.web.admin.test_browser_bugs import draft

__all__ = ["chromium", "page", "site"]  # fixtures shared with the main browser tests

pytestmark = pytest.mark.browser


def test_a_send_to_nobody_finishes_and_says_why(page, make_user, runtime) -> None:
    # Before, start_sending queued no batch and left the campaign `sending` for good, and the
    # admin said "Sending started." over a campaign that would never send anything.
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE")
    campaign_id = draft(runtime, segment="country = FR")  # a segment nobody matches
    sign_in(page, make_user("marketer"))
    page.goto(f"/admin/campaigns/{campaign_id}")
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_selector("#send-plan")
    assert "Would send to 0 of the segment's 0 contacts." in page.locator("#plan-summary").inner_text()
    assert page.locator("#plan-nobody").inner_text().startswith("Nobody would get this campaign")
    page.get_by_role("button", name="Send to 0 people").click()
    page.wait_for_url(re.compile(rf"/admin/campaigns/{campaign_id}(\?.*)?$"))  # back on the campaign page
    assert page.locator("#campaign-status").inner_text() == "Finished"
    assert page.locator("#sent-to-nobody").inner_text() == "Sent to nobody: the segment matched no contact."
    assert page.get_by_text("Sending started.").count() == 0
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "finished"


def test_the_dry_run_of_a_file_with_a_bad_row_counts_the_good_rows(page, make_user, runtime, tmp_path) -> None:
    # Before, a dry run that met a bad row (without "Skip rejected rows") wrote nothing into its
    # rolled-back savepoint, so the check step said "New contacts: 0" and "Updated contacts: 0".
    with transaction(runtime.factory) as s:
        make_contact(s, email="joe@bulbs.example", country="US")
    csv_file = tmp_path / "trade-fair.csv"
    csv_file.write_text("email,first_name,company,country\n"
                        "anna@licht.example,Anna,Licht GmbH,DE\n"
                        "wei@@bad,Wei,Bad Address Co,CN\n"
                        "joe@bulbs.example,Joe,Bulbs Inc,US\n"
                        "li@lamps.example,Li,Lamps Ltd,CN\n", encoding="utf-8")
    sign_in(page, make_user("marketer"))
    page.get_by_role("link", name="Import").click()
    page.get_by_label("CSV or Excel file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and map columns").click()
    page.get_by_label("Consent of these contacts").select_option("express")
    page.get_by_label("Source (where the addresses come from)").fill("Trade fair 2026")
    page.get_by_role("button", name="Check (dry run)").click()
    page.wait_for_selector("#dry-run")

    counts = dict(line.split(": ") for line in page.locator("#dry-run ul.counts li").all_inner_texts())
    assert counts["Rows"] == "4" and counts["Rejected rows"] == "1"
    assert counts["New contacts"] == "2" and counts["Updated contacts"] == "1"


def test_a_past_start_time_is_said_once(page, make_user, runtime) -> None:
    # Before, the error was shown at the top of the campaign page and again in its compliance
    # check (lint.html read the same `error`), so the marketer read it twice.
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE")
    campaign_id = draft(runtime)
    sign_in(page, make_user("marketer"))
    page.goto(f"/admin/campaigns/{campaign_id}")
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    page.fill("#schedule-at", yesterday.strftime("%Y-%m-%dT09:30"))
    page.get_by_role("button", name="Schedule", exact=True).click()
    page.wait_for_selector("[role=alert]:has-text('not in the future')")
    assert page.locator("main").inner_text().count("not in the future") == 1
    assert page.get_by_role("alert").count() == 1
    assert page.locator("#campaign-status").inner_text() == "Draft"
