"""The mail editor in real headless Chromium: a campaign from a saved template, edited visually, saved, linted, previewed.

Screenshots go to docs/screenshots/admin-editor*.png, admin-templates*.png and admin-brand*.png from the SQLite run.
"""

from __future__ import annotations

import struct
import zlib
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


def tall(page: Any, name: str, request: Any, width: int = 1280) -> None:
    """A screenshot with the whole page inside the viewport: Chromium leaves a frame it never showed blank."""
    page.set_viewport_size({"width": width, "height": 900})
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": width, "height": height})
    shoot(page, name, request)
    page.set_viewport_size({"width": 1280, "height": 900})


def phone(page: Any, name: str, request: Any) -> None:
    """The same page 390 px wide, then back to the desktop width."""
    tall(page, name, request, width=390)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A one-colour PNG image, made here."""
    row = b"\0" + bytes(rgb) * width
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


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
    phone(page, "templates-phone", request)
    page.locator(f'tr[data-template="{template_id}"] a', has_text="New campaign").click()
    page.wait_for_url("**/use")
    page.wait_for_load_state("load")  # every style sheet applied: the buttons are where they will stay
    page.get_by_role("button", name="Visual").click()  # HTML is the first mode; the browser remembers this one
    expect(page.get_by_role("button", name="Visual")).to_have_attribute("aria-pressed", "true")
    page.wait_for_selector("#visual-editor iframe.gjs-frame", timeout=60_000)  # GrapesJS on a busy machine
    frame = page.frame_locator("#visual-editor iframe.gjs-frame")
    frame.locator("text=Thank you for visiting our stand").wait_for()
    shoot(page, "editor-new", request)
    page.locator("#create").click()
    page.wait_for_url("**/admin/campaigns/*")
    campaign_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("#visual-editor iframe.gjs-frame", timeout=60_000)  # GrapesJS on a busy machine
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
    phone(page, "editor-phone", request)
    # The same content in the rich-text editor and back in the HTML textarea.
    page.get_by_role("button", name="Rich text").click()
    page.locator("#rich-editor .pell-content", has_text="See you in Guangzhou.").wait_for()
    page.get_by_role("button", name="HTML", exact=True).click()
    assert "See you in Guangzhou." in page.locator("#html").input_value()
    page.get_by_role("button", name="Visual").click()
    page.wait_for_selector("#visual-editor iframe.gjs-frame", timeout=60_000)  # GrapesJS on a busy machine
    page.goto(f"/admin/campaigns/{campaign_id}/preview")
    mail = page.frame_locator(".preview iframe").first
    mail.locator("text=See you in Guangzhou.").wait_for()
    assert errors == [], errors


def test_the_brand_page_and_the_editor_in_chinese(page, make_user, runtime, request) -> None:
    with transaction(runtime.factory) as s:
        template_id = create_template(s, name="展会跟进", subject="很高兴在展会上见到您",
                                      html="<p>{{ contact.first_name or \"您好\" }}，感谢您光临我们的展位。</p>").id
    errors = _errors(page)
    sign_in(page, make_user("admin"))
    page.goto("/admin/settings/brand")
    page.locator("#logo").set_input_files(files=[{"name": "logo.png", "mimeType": "image/png",
                                                  "buffer": png(180, 48, (26, 95, 180))}])
    page.locator("#colour").fill("#1a5fb4")
    page.locator("#background").fill("#f4f6fa")
    page.locator("#header_html").fill('<p style="margin:0;color:#1a5fb4">Ningbo Bright Lighting · LED since 1998</p>')
    page.locator("#footer_html").fill("<p>Visit us at the Canton Fair, hall 11.3</p>")
    page.locator("#save-brand").click()
    page.wait_for_selector("text=Saved.")
    # The logo is served back and the browser decodes it: a real image.
    assert page.locator("#current-logo").evaluate("img => img.complete && img.naturalWidth") == 180
    # A mail with the layout: the header before where the content goes, the brand footer after it.
    sample = page.frame_locator("#brand-sample")
    sample.locator("text=LED since 1998").wait_for()
    assert sample.locator("img").evaluate("img => img.complete && img.naturalWidth") == 180
    tall(page, "brand", request)
    phone(page, "brand-phone", request)
    page.select_option("#language-select", "zh_Hans")
    page.locator("form[action='/admin/language'] button").click()
    page.wait_for_selector("html[lang=zh-Hans]")
    sample.locator("text=LED since 1998").wait_for()
    tall(page, "brand-zh_Hans", request)
    phone(page, "brand-zh_Hans-phone", request)
    page.goto("/admin/templates")
    shoot(page, "templates-zh_Hans", request)
    phone(page, "templates-zh_Hans-phone", request)
    page.goto(f"/admin/templates/{template_id}/use")
    page.get_by_role("button", name="可视化").click()
    page.frame_locator("#visual-editor iframe.gjs-frame").locator("text=感谢您光临我们的展位").wait_for()
    # GrapesJS's own labels in Chinese (its zh locale) and the newsletter blocks in ours.
    assert page.locator("#visual-editor .gjs-block-label", has_text="2 栏").count() == 1
    assert page.get_by_role("button", name="可视化").get_attribute("aria-pressed") == "true"
    shoot(page, "editor-zh_Hans", request)
    phone(page, "editor-zh_Hans-phone", request)
    assert errors == [], errors
