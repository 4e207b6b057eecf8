"""In Chromium: Send shows what the send would do, and only "Send to N people" sends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Campaign, Send, Suppression
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.web.admin.test_browser import chromium, page, shoot, sign_in, site

__all__ = ["chromium", "page", "site"]  # fixtures shared with the main browser tests

pytestmark = pytest.mark.browser


def seed(runtime) -> int:
    """Five buyers who get the mail, and one each complained, without a lawful basis and capped this week."""
    with transaction(runtime.factory) as s:
        for country, language in (("DE", "de"), ("DE", "de"), ("FR", "fr"), ("US", "en"), ("CN", "zh_Hans")):
            make_contact(s, country=country, language=language)
        complainer = make_contact(s, country="GB", language="en")
        s.add(Suppression(email_hash=complainer.email_hash, reason="complaint"))
        make_contact(s, country="DE", consent=None)
        capped = make_contact(s, country="FR", language="fr")
        earlier = Campaign(name="Autumn catalogue", subject="s", html="h", status="finished")
        s.add(earlier)
        s.flush()
        s.add(Send(campaign_id=earlier.id, contact_id=capped.id, state="sent",
                   sent_at=datetime.now(timezone.utc) - timedelta(days=2)))
        return create_campaign(s, settings=runtime.settings, name="Spring LED panels", subject="Our new LED panels",
                               html="<p>Dear {{ first_name }}, see our new panels.</p>").id


def test_send_shows_the_estimate_and_the_confirm_sends(page, chromium, site, make_user, runtime, request) -> None:
    campaign_id = seed(runtime)
    sign_in(page, make_user("marketer"))
    page.goto(f"/admin/campaigns/{campaign_id}")
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_selector("#send-plan")
    assert "Would send to 5 of the segment's 8 contacts." in page.locator("#plan-summary").inner_text()
    skipped = page.locator("#plan-skipped").inner_text()
    assert "Complained (spam report)" in skipped and "No lawful basis" in skipped and "Frequency cap" in skipped
    shoot(page, "send-confirm", request)
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "send-confirm-phone", request)
    page.set_viewport_size({"width": 1280, "height": 900})
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "draft"  # looking changed nothing
    # The same step in Chinese (another campaign to the same audience), for the screenshots.
    with transaction(runtime.factory) as s:
        other = create_campaign(s, settings=runtime.settings, name="春季 LED 面板", subject="新款 LED 面板",
                                html="<p>Dear {{ first_name }}, see our new panels.</p>").id
    context = chromium.new_context(base_url=site, viewport={"width": 1280, "height": 900}, locale="en-GB")
    zh = context.new_page()
    zh.set_default_timeout(15000)
    try:
        sign_in(zh, make_user("marketer", email="zh@bright-lighting.example", language="zh_Hans"))
        zh.goto(f"/admin/campaigns/{other}/send-plan")
        assert "没有合法依据" in zh.locator("#plan-skipped").inner_text()
        shoot(zh, "send-confirm-zh_Hans", request)
        zh.set_viewport_size({"width": 390, "height": 844})
        shoot(zh, "send-confirm-zh_Hans-phone", request)
    finally:
        context.close()

    page.get_by_role("button", name="Send to 5 people").click()  # the first campaign, at last
    page.wait_for_selector("text=Sending started.")
    assert page.locator('[data-state="queued"]').inner_text() == "5"
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "sending"
