"""The mail editor in real headless Chromium: a campaign from a saved template, edited visually, saved, linted, previewed.

Screenshots go to docs/screenshots/admin-editor*.png, admin-templates*.png and admin-brand*.png from the SQLite run.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from sendwell.content.templates import create_template, starter
from sendwell.db.models import Campaign
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.web.admin import test_browser as browser
from tests.web.admin.test_browser import shoot, sign_in

pytestmark = pytest.mark.browser
# The browser fixtures of test_browser.py: one Chromium per module, a real uvicorn, a fresh tab.
chromium, site, page = browser.chromium, browser.site, browser.page


def _errors(tab: Any) -> list[str]:
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def test_a_campaign_from_a_template_is_edited_visually_linted_and_previewed(page, make_user, runtime,
                                                                            request) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", first_name="Anna")
        fair = starter("fair_follow_up")
        template_id = create_template(s, name="Fair follow-up", subject=fair.subject, html=fair.html).id
    errors = _errors(page)
    sign_in(page, make_user("marketer"))
    page.goto("/admin/templates")
    shoot(page, "templates", request)
    page.locator(f'tr[data-template="{template_id}"] a', has_text="New campaign").click()
    page.wait_for_selector("#visual-editor iframe.gjs-frame")
    frame = page.frame_locator("#visual-editor iframe.gjs-frame")
    frame.locator("text=Thank you for visiting our stand").wait_for()
    shoot(page, "editor-new", request)
    page.locator("#create").click()
    page.wait_for_url("**/admin/campaigns/*")
    campaign_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("#visual-editor iframe.gjs-frame")
    page.wait_for_selector("[data-lint=ok]")
    # Edit a text block in the canvas: double-click enters the rich-text editor.
    paragraph = frame.locator("p", has_text="Thank you for visiting our stand")
    paragraph.dblclick()
    page.keyboard.press("End")
    page.keyboard.type(" See you in Guangzhou.")
    page.locator("#variable-picker").select_option("{{ contact.company }}")
    # A spam phrase in the subject: the live lint warns, and stops when it is gone.
    page.locator("#subject").fill("FREE!!! Act now")
    page.wait_for_selector(".finding.warning code:text('spam-phrase')")
    page.locator("#subject").fill("Good to meet you at the fair")
    page.wait_for_selector("[data-lint=ok]")
    expect(page.locator(".finding code", has_text="spam-phrase")).to_have_count(0)
    page.locator("#save").click()
    page.wait_for_selector("text=Saved.")
    with transaction(runtime.factory) as s:
        saved = s.get(Campaign, campaign_id)
        assert "See you in Guangzhou." in saved.html and "{{ contact.company }}" in saved.html
        assert '{{ contact.first_name or "there" }}' in saved.html  # template code survives the editor
        assert saved.subject == "Good to meet you at the fair"
    shoot(page, "editor", request)
    # The same content in the rich-text editor and back in the HTML textarea.
    page.get_by_role("button", name="Rich text").click()
    page.locator("#rich-editor .pell-content", has_text="See you in Guangzhou.").wait_for()
    page.get_by_role("button", name="HTML", exact=True).click()
    assert "See you in Guangzhou." in page.locator("#html").input_value()
    page.get_by_role("button", name="Visual").click()
    page.wait_for_selector("#visual-editor iframe.gjs-frame")
    page.goto(f"/admin/campaigns/{campaign_id}/preview")
    mail = page.frame_locator(".preview iframe").first
    mail.locator("text=See you in Guangzhou.").wait_for()
    assert errors == [], errors
