"""The unsubscribe page, its alternatives, the confirmation page with reason survey and Undo."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from sendwell.db.models import Consent, Contact, Event, Subscription, Topic
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.optout.conftest import count, p, suppressed, u


@pytest.fixture
def contact(runtime):
    with transaction(runtime.factory) as s:
        topic = Topic(slug="led", name="LED panels")
        s.add(topic)
        s.flush()
        c = make_contact(s, email="anna@licht.example", language="en")
        s.add(Subscription(contact_id=c.id, topic_id=topic.id))
        return c


def test_page_offers_all_and_every_lawful_alternative_and_get_changes_nothing(runtime, web, contact) -> None:
    """Rules 8, 12, 13: GET changes nothing; 'unsubscribe from all' beside the alternatives; no required field."""
    page = web.get(u(runtime, contact.id))
    assert page.status_code == 200
    html = page.text
    assert "an***@licht.example" in html and "Ningbo Bright Lighting" in html
    assert "Unsubscribe from all" in html
    for choice in ("monthly", "launches_only", "pause_3", "pause_6"):
        assert f'name="choice" value="{choice}"' in html
    assert "Choose topics" in html and "/p/" in html
    assert "required" not in html  # rule 12: no extra data asked
    assert "<script" not in html  # works without JavaScript: plain forms only
    assert suppressed(runtime) == 0 and count(runtime) == 0


@pytest.mark.parametrize("choice,field,expected", [
    ("monthly", "frequency_tier", "monthly"),
    ("launches_only", "frequency_tier", "launches_only"),
])
def test_alternative_frequency_keeps_the_contact_subscribed(runtime, web, contact, choice, field, expected) -> None:
    response = web.post(u(runtime, contact.id) + "/alternative", data={"choice": choice})
    assert response.status_code == 200
    assert "Unsubscribe from all" in response.text  # still offered after choosing less
    with transaction(runtime.factory) as s:
        assert getattr(s.get(Contact, contact.id), field) == expected
        event = s.scalar(select(Event).where(Event.kind == "preferences_changed"))
        assert event.method == "page" and event.data["changes"]["frequency_tier"][1] == expected
    assert suppressed(runtime) == 0


@pytest.mark.parametrize("months", [3, 6])
def test_pause_alternative_sets_paused_until(runtime, web, contact, months) -> None:
    response = web.post(u(runtime, contact.id) + "/alternative", data={"choice": f"pause_{months}"})
    assert response.status_code == 200
    with transaction(runtime.factory) as s:
        until = s.get(Contact, contact.id).paused_until
        created = s.scalar(select(Event.occurred_at).where(Event.kind == "preferences_changed"))
    assert until is not None and 28 * months <= (until - created).days <= 31 * months
    assert until.strftime("%Y-%m-%d") in response.text


def test_unknown_alternative_is_refused_and_changes_nothing(runtime, web, contact) -> None:
    response = web.post(u(runtime, contact.id) + "/alternative", data={"choice": "weekly-ish"})
    assert response.status_code == 400
    assert count(runtime, Event, kind="preferences_changed") == 0


def test_one_click_on_the_page_then_reason_then_undo(runtime, web, contact) -> None:
    """Rule 21: withdrawing is one click; the confirmation page asks why (optionally) and offers Undo."""
    done = web.post(u(runtime, contact.id), data={"List-Unsubscribe": "One-Click", "source": "page"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert "/undo" in done.text and 'name="reason"' in done.text
    for reason in ("not_relevant", "too_many", "never_signed_up", "situation_changed", "other"):
        assert f'value="{reason}"' in done.text
    assert suppressed(runtime) == 1

    answered = web.post(u(runtime, contact.id) + "/reason", data={"reason": "other", "text": "  We closed\nthe shop "})
    assert answered.status_code == 200 and "Thank you for telling us" in answered.text
    web.post(u(runtime, contact.id) + "/reason", data={"reason": "too_many"})  # a changed answer replaces it
    with transaction(runtime.factory) as s:
        reasons = list(s.scalars(select(Event).where(Event.kind == "unsubscribe_reason")))
        assert len(reasons) == 1 and reasons[0].data["reason"] == "too_many"

    undone = web.post(u(runtime, contact.id) + "/undo")
    assert undone.status_code == 200 and "Welcome back" in undone.text
    assert suppressed(runtime) == 0
    with transaction(runtime.factory) as s:
        consent = s.scalars(select(Consent).order_by(Consent.id.desc())).first()
        assert consent.source == "resubscribe" and consent.kind == "express" and consent.withdrawn_at is None
        assert consent.ip == "127.0.0.1"
        assert s.scalar(select(Subscription.status)) == "subscribed"  # what they had is restored
        assert s.scalar(select(Event.method).where(Event.kind == "resubscribed")) == "undo"


def test_reason_survey_is_optional_and_needs_an_opt_out(runtime, web, contact) -> None:
    before = web.post(u(runtime, contact.id) + "/reason", data={"reason": "too_many"})
    assert before.status_code == 200 and count(runtime, Event, kind="unsubscribe_reason") == 0
    web.post(u(runtime, contact.id), data={"source": "page"})
    empty = web.post(u(runtime, contact.id) + "/reason", data={})
    assert empty.status_code == 200 and count(runtime, Event, kind="unsubscribe_reason") == 0
    assert suppressed(runtime) == 1  # no answer never undoes or blocks the opt-out


def test_get_after_unsubscribing_shows_the_state_and_undo_not_the_form(runtime, web, contact) -> None:
    web.post(u(runtime, contact.id), data={"List-Unsubscribe": "One-Click"})
    again = web.get(u(runtime, contact.id))
    assert "You are unsubscribed" in again.text and "/undo" in again.text
    assert suppressed(runtime) == 1


def test_undo_is_only_a_post(runtime, web, contact) -> None:
    web.post(u(runtime, contact.id), data={"List-Unsubscribe": "One-Click"})
    assert web.get(u(runtime, contact.id) + "/undo").status_code == 405
    assert suppressed(runtime) == 1


@pytest.mark.parametrize("contact_language,accept,expected", [
    ("zh", "", "退订全部邮件"),
    ("zh-CN", "en", "退订全部邮件"),
    ("de", "fr", "Von allem abmelden"),
    ("", "fr-CH, en;q=0.5", "Se désabonner de tout"),
    ("pt", "es-MX", "Darse de baja de todo"),
    ("", "ja", "Unsubscribe from all"),
])
def test_page_language_is_the_contacts_then_the_browsers(runtime, web, contact_language, accept, expected) -> None:
    with transaction(runtime.factory) as s:
        c = make_contact(s, language=contact_language)
    page = web.get(u(runtime, c.id), headers={"Accept-Language": accept} if accept else {})
    assert expected in page.text
    lang = re.search(r'<html lang="([^"]+)"', page.text).group(1)
    assert lang == {"退订全部邮件": "zh-Hans", "Von allem abmelden": "de", "Se désabonner de tout": "fr",
                    "Darse de baja de todo": "es", "Unsubscribe from all": "en"}[expected]


def test_confirmation_page_is_localised(runtime, web) -> None:
    with transaction(runtime.factory) as s:
        c = make_contact(s, language="zh")
    done = web.post(u(runtime, c.id), data={"source": "page"})
    assert "您已退订" in done.text and "撤销" in done.text and "邮件太多" in done.text


def test_names_with_html_are_escaped_on_every_page(runtime, web, monkeypatch) -> None:
    evil = "<script>alert(1)</script>"
    runtime.replace_settings(runtime.settings.replace(company_name=f"ACME {evil}"))
    with transaction(runtime.factory) as s:
        s.add(Topic(slug="x", name=f"Topic {evil}"))
        c = make_contact(s, email="o'hara+<b>@example.com", first_name=evil, company=evil, language="en")
        from sendwell.campaigns.service import create_campaign

        campaign = create_campaign(s, settings=runtime.settings, name=f"Spring {evil}", subject="s", html="h",
                                   segment="")
    pages = [
        web.get(u(runtime, c.id, campaign_id=campaign.id)),
        web.get(p(runtime, c.id, campaign_id=campaign.id)),
        web.post(u(runtime, c.id) + "/alternative", data={"choice": "monthly"}),
        web.post(p(runtime, c.id), data={"frequency": "weekly"}),
        web.post(u(runtime, c.id), data={"source": "page"}),
        web.post(u(runtime, c.id) + "/reason", data={"reason": "other", "text": evil}),
        web.get(u(runtime, c.id)),
        web.post(u(runtime, c.id) + "/undo"),
        web.get("/manage"), web.post("/manage", data={"email": evil}),
        web.get("/u/not-a-token"),
    ]
    for response in pages:
        assert "<script>" not in response.text and "<b>@" not in response.text, response.request.url
    assert "&lt;script&gt;" in pages[0].text and "&lt;script&gt;" in pages[1].text
