"""Things a marketer met on screen, each checked in real headless Chromium: error pages, segments, phone width."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Campaign, Segment
from sendwell.db.session import transaction
from sendwell.optout.tokens import SALT_PREFERENCES, TokenData, make_token
from sendwell.segments.service import create_segment
from tests.helpers import make_contact
from tests.web.admin.test_browser import chromium, page, shoot, sign_in, site  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def draft(runtime: Any, **fields: Any) -> int:
    with transaction(runtime.factory) as s:
        return create_campaign(s, settings=runtime.settings, **{"name": "Spring panels", "subject": "New panels",
                                                                "html": "<p>Dear {{ first_name }}</p>", **fields}).id


def test_after_a_failed_post_the_language_switch_and_a_reload_show_admin_pages(page, make_user, runtime,  # noqa: F811
                                                                               request) -> None:
    campaign_id = draft(runtime)
    sign_in(page, make_user("marketer"))
    page.goto(f"/admin/campaigns/{campaign_id}")
    page.get_by_role("button", name="Send test").click()
    page.wait_for_url(f"**/admin/campaigns/{campaign_id}/test")  # a form's own address, which takes only POST
    page.select_option("#language-select", "zh_Hans")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(f"**/admin/campaigns/{campaign_id}")  # back on a page a GET can show
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    assert page.locator("h1").first.inner_text().startswith("Spring panels")
    # Reloading the form's address: a page in the admin's look and the user's language, not JSON.
    answer = page.goto(f"/admin/campaigns/{campaign_id}/test")
    assert answer is not None and answer.status == 405 and "text/html" in answer.headers["content-type"]
    assert page.locator("h1").inner_text() == "此页面不能直接打开"
    assert page.get_by_role("navigation", name="主导航").is_visible()
    assert "Method Not Allowed" not in page.content()
    shoot(page, "error-zh_Hans", request)
    answer = page.goto("/admin/no-such-page")
    assert answer is not None and answer.status == 404
    assert page.locator("h1").inner_text() == "未找到"
    # The API keeps its problem documents, whatever the caller accepts.
    api = page.request.get("/api/v1/no-such-thing", headers={"Accept": "text/html"})
    assert api.status in (401, 404) and api.headers["content-type"].startswith("application/problem+json")


def test_an_english_error_page_before_sign_in(page, request) -> None:  # noqa: F811
    answer = page.goto("/admin/language")
    assert answer is not None and answer.status == 405
    assert page.locator("h1").inner_text() == "This page cannot be opened directly"
    assert page.get_by_role("link", name="Back to the dashboard").is_visible()
    shoot(page, "error", request)


def test_a_saved_segment_with_spaces_in_its_name_is_used_by_a_campaign(page, make_user, runtime) -> None:  # noqa: F811
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE")
        create_segment(s, name="Trade fair buyers", expression="country = DE")
    sign_in(page, make_user("marketer"))
    page.goto("/admin/segments")
    reference = page.locator('[data-reference="Trade fair buyers"]').inner_text()
    assert reference == "@'Trade fair buyers'"
    campaign_id = draft(runtime, name="Fair follow-up")
    page.goto(f"/admin/campaigns/{campaign_id}")
    page.get_by_label("Segment (empty = every contact)").fill(reference + " and not tag = competitor")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_selector("text=Saved.")
    with transaction(runtime.factory) as s:
        rule = s.get(Campaign, campaign_id).segment_expr
    assert rule == "country = DE and not tag = competitor"  # the campaign keeps its own copy of the rule


def test_deleting_a_segment_asks_first(page, make_user, runtime, request) -> None:  # noqa: F811
    with transaction(runtime.factory) as s:
        create_segment(s, name="Old leads", expression="stage = new_lead")
    sign_in(page, make_user("marketer"))
    page.goto("/admin/segments")
    shoot(page, "segments", request)
    page.get_by_role("link", name="Delete Old leads").click()
    assert "Old leads" in page.locator("h1").inner_text()
    shoot(page, "segment-delete", request)
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Segment.id).where(Segment.name == "Old leads")) is not None  # nothing deleted yet
    page.get_by_role("button", name="Delete segment").click()
    page.wait_for_url("**/admin/segments?deleted=*")
    assert page.get_by_role("status").inner_text() == "Segment “Old leads” deleted."
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Segment.id).where(Segment.name == "Old leads")) is None


def test_the_preference_center_shows_the_subject_not_the_internal_campaign_name(page, runtime) -> None:  # noqa: F811
    campaign_id = draft(runtime, name="INTERNAL Q4 push (low margin)", subject="Our new LED panels")
    with transaction(runtime.factory) as s:
        contact_id = make_contact(s, country="DE").id
    token = make_token(runtime.settings.secret_keys, SALT_PREFERENCES, TokenData(contact_id, campaign_id, None))
    page.goto(f"/p/{token}")
    text = page.locator("main").inner_text()
    assert "Our new LED panels" in text and "INTERNAL" not in page.content()


def test_the_users_page_fits_a_phone_and_every_page_has_a_favicon(chromium, site, make_user, request) -> None:  # noqa: F811
    context = chromium.new_context(base_url=site, viewport={"width": 390, "height": 844}, locale="en-GB")
    phone = context.new_page()
    phone.set_default_timeout(15000)
    missing: list[str] = []
    phone.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    try:
        sign_in(phone, make_user("admin"))
        phone.goto("/admin/users")
        # Neither the page nor the table scrolls sideways: each user's Save button is on screen.
        widths = phone.evaluate("""() => [document.documentElement, document.querySelector('.scroll')]
            .map(e => [e.scrollWidth, e.clientWidth])""")
        assert all(scrolled <= shown for scrolled, shown in widths), widths
        save = phone.get_by_role("button", name="Save", exact=True).first.bounding_box()
        assert save and save["x"] + save["width"] <= 390
        shoot(phone, "users-phone", request)
        icon = phone.request.get(phone.locator('link[rel="icon"]').get_attribute("href"))
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/")
        favicon = phone.request.get("/favicon.ico")  # what browsers ask every site for, recipient pages too
        assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/")
        assert missing == []
        phone.select_option("#language-select", "zh_Hans")
        phone.get_by_role("button", name="Switch").click()
        phone.wait_for_selector("h1:has-text('用户')")
        shoot(phone, "users-zh_Hans-phone", request)
    finally:
        context.close()
