"""Signup forms in a real browser: the hosted form, "check your inbox", the confirm button, the admin's Forms page.

Screenshots go to docs/screenshots/signup-*.png and admin-forms*.png (or SENDWELL_SCREENSHOTS_DIR).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from sendwell.contacts.records import create_topic
from sendwell.db.models import Contact, Signup
from sendwell.db.session import transaction
from sendwell.signup import service
from sendwell.signup.tokens import make_signup_token
from tests.web.admin.conftest import PASSWORD
from tests.web.admin.test_axe import axe_violations, serve_axe
from tests.web.admin.test_browser import SHOTS, chromium, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
# A person's browser: the confirm POST of a headless browser's own agent would be taken for a link scanner.
PERSON = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
PHONE = {"width": 390, "height": 844}


VIOLATIONS: list[str] = []


def shoot(tab: Any, name: str) -> None:
    """A screenshot, and axe-core's findings on the page (none may remain)."""
    VIOLATIONS.extend(axe_violations(tab))
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_tab(chromium: Any, site: str, viewport: dict[str, int] | None = None) -> Any:  # noqa: F811
    context = chromium.new_context(base_url=site, viewport=viewport or {"width": 1280, "height": 900},
                                   user_agent=PERSON, locale="en-GB")
    serve_axe(context)
    tab = context.new_page()
    tab.set_default_timeout(15000)
    return tab


def test_sign_up_and_confirm_in_a_browser(chromium, site, runtime, make_user) -> None:  # noqa: F811
    with transaction(runtime.factory) as s:
        create_topic(s, slug="led-news", name="LED panels and news")
        create_topic(s, slug="fairs", name="Trade fair invitations")
        form_id = service.create_form(s, name="Canton Fair 2027", fields=["first_name", "company", "country"],
                                      topics=["led-news", "fairs"], thanks_text="Thank you for visiting booth 11.2 B14.").id
        zh_form_id = service.create_form(s, name="广交会 2027 · 展位 11.2 B14", fields=["first_name", "company"],
                                         topics=["led-news"], language="zh_Hans").id
    tab = open_tab(chromium, site)
    tab.goto(f"/f/{form_id}")
    shoot(tab, "signup-form")
    tab.get_by_label("Email address").fill("anna@importer.example")
    tab.get_by_label("First name").fill("Anna")
    tab.get_by_label("Company").fill("Licht Import GmbH")
    tab.get_by_label("Country").fill("Germany")
    tab.get_by_label("LED panels and news").check()
    tab.locator("input[name=consent]").check()
    tab.get_by_role("button", name="Sign up").click()
    tab.get_by_role("heading", name="Check your inbox").wait_for()
    assert "booth 11.2 B14" in tab.content()
    shoot(tab, "signup-sent")
    with transaction(runtime.factory) as s:
        signup_id = s.scalar(select(Signup.id))
    confirm = f"/f/c/{make_signup_token(runtime.settings.secret_keys, signup_id)}"
    tab.goto(f"{confirm}?lang=zh_Hans")
    tab.get_by_role("button", name="确认我的订阅").wait_for()
    shoot(tab, "signup-confirm-zh_Hans")
    tab.goto(confirm)
    shoot(tab, "signup-confirm")
    tab.get_by_role("button", name="Confirm my subscription").click()
    tab.get_by_role("heading", name="You are subscribed").wait_for()
    shoot(tab, "signup-confirmed")
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Contact.country)) == "DE"
    tab.goto(f"/f/{zh_form_id}")
    tab.get_by_role("button", name="订阅").wait_for()
    shoot(tab, "signup-form-zh_Hans")
    tab.context.close()
    phone = open_tab(chromium, site, PHONE)
    phone.goto(f"/f/{zh_form_id}")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(phone, "signup-form-zh_Hans-phone")
    phone.goto(f"/f/{form_id}")
    shoot(phone, "signup-form-phone")
    with transaction(runtime.factory) as s:
        pending = service.submit_signup(s, form_id=zh_form_id, values={"email": "li@buyer.example"}, topics=None,
                                        pepper=runtime.settings.pepper).signup_id
    phone.goto(f"/f/c/{make_signup_token(runtime.settings.secret_keys, pending)}")
    phone.get_by_role("button", name="确认我的订阅").wait_for()
    shoot(phone, "signup-confirm-zh_Hans-phone")
    # The admin's Forms page, signed in, in English and Chinese.
    for language, suffix in (("en", ""), ("zh_Hans", "-zh_Hans")):
        email = make_user("marketer", email=f"m-{language}@bright-lighting.example", language=language)
        phone.context.clear_cookies()
        phone.set_viewport_size({"width": 1280, "height": 900})
        phone.goto("/admin/login")
        phone.locator("input[name=email]").fill(email)
        phone.locator("input[name=password]").fill(PASSWORD)
        phone.locator("form button[type=submit]").click()
        phone.wait_for_url("**/admin/dashboard")
        phone.goto("/admin/forms")
        shoot(phone, f"admin-forms{suffix}")
        phone.goto(f"/admin/forms/{form_id}")
        phone.locator("#embed").wait_for()
        shoot(phone, f"admin-form{suffix}")
    phone.context.close()
    assert VIOLATIONS == [], "\n".join(VIOLATIONS)
