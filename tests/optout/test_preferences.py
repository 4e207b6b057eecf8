"""The preference center (topics, frequency, pause, language, unsubscribe from all) and the magic link."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sendwell.db.models import Contact, Event, Subscription, Topic
from sendwell.db.session import transaction
from sendwell.followups import dispatch_outbox
from tests.helpers import make_contact, parse_strict
from tests.optout.conftest import count, outbox, p, suppressed


@pytest.fixture
def topics(runtime):
    with transaction(runtime.factory) as s:
        rows = [Topic(slug=slug, name=name) for slug, name in (("led", "LED panels"), ("solar", "Solar lights"))]
        s.add_all(rows)
        s.flush()
        return [t.id for t in rows]


@pytest.fixture
def contact(runtime, topics):
    with transaction(runtime.factory) as s:
        c = make_contact(s, email="ben@importer.example", language="en")
        s.add(Subscription(contact_id=c.id, topic_id=topics[0]))
        return c


def test_preference_center_shows_choices_and_unsubscribe_from_all(runtime, web, contact, topics) -> None:
    """Rule 13: a preference menu always offers 'unsubscribe from all'."""
    page = web.get(p(runtime, contact.id))
    assert page.status_code == 200
    html = page.text
    assert "LED panels" in html and "Solar lights" in html
    assert f'name="topic" value="{topics[0]}" checked' in html and f'name="topic" value="{topics[1]}">' in html
    for tier in ("weekly", "monthly", "launches_only"):
        assert f'name="frequency" value="{tier}"' in html
    assert 'name="pause" value="3"' in html and 'name="pause" value="6"' in html and 'name="language"' in html
    assert "Unsubscribe from all" in html and 'value="preferences"' in html
    assert count(runtime) == 0


def test_saving_preferences_changes_topics_tier_pause_and_language(runtime, web, contact, topics) -> None:
    response = web.post(p(runtime, contact.id), data={
        "topics_shown": "1", "topic": [str(topics[1])], "frequency": "launches_only", "pause": "3", "language": "de",
    })
    assert response.status_code == 200 and "Gespeichert." in response.text  # now in the chosen language
    with transaction(runtime.factory) as s:
        c = s.get(Contact, contact.id)
        assert (c.frequency_tier, c.language) == ("launches_only", "de") and c.paused_until is not None
        subs = dict(s.execute(select(Subscription.topic_id, Subscription.status)).all())
        assert subs == {topics[0]: "unsubscribed", topics[1]: "subscribed"}
        event = s.scalar(select(Event).where(Event.kind == "preferences_changed"))
        assert event.method == "preference_center"
        assert event.data["changes"]["topics_added"] == [topics[1]]
        assert event.data["changes"]["topics_removed"] == [topics[0]]
    assert suppressed(runtime) == 0


def test_bad_preference_values_are_refused_without_a_partial_write(runtime, web, contact) -> None:
    response = web.post(p(runtime, contact.id), data={"frequency": "daily", "language": "de"})
    assert response.status_code == 400
    with transaction(runtime.factory) as s:
        assert s.get(Contact, contact.id).language == "en"
    assert count(runtime, Event, kind="preferences_changed") == 0


def test_unsubscribe_from_the_preference_center_is_recorded_as_such(runtime, web, contact) -> None:
    page = web.get(p(runtime, contact.id)).text
    action = page.split('value="preferences"')[0].rsplit('action="', 1)[1].split('"')[0]
    assert web.post(action, data={"List-Unsubscribe": "One-Click", "source": "preferences"}).status_code == 200
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Event.method).where(Event.kind == "unsubscribed")) == "preference_center"
    assert "Resubscribe" in web.get(p(runtime, contact.id)).text


def test_manage_form_answers_the_same_for_known_and_unknown_addresses(runtime, web, contact, smtp_server) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    known = web.post("/manage", data={"email": "BEN@importer.example"})
    unknown = web.post("/manage", data={"email": "nobody@nowhere.example"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text  # nothing disclosed
    assert web.get("/manage").status_code == 200
    dispatch_outbox(runtime)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ben@importer.example"]]
    msg = parse_strict(smtp_server.messages[0].data)
    assert msg["Auto-Submitted"] == "auto-generated" and msg["List-Unsubscribe"] is None
    link = msg.get_body(("plain",)).get_content().split("/p/", 1)[1].split()[0]
    assert "Mail preferences for" in web.get(f"/p/{link}").text


def test_magic_links_are_rate_limited_per_address(runtime, contact) -> None:
    from datetime import datetime, timedelta, timezone

    from sendwell.optout.service import request_magic_link

    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    with transaction(runtime.factory) as s:
        for minutes in (0, 1, 9):
            request_magic_link(s, email="ben@importer.example", now=start + timedelta(minutes=minutes))
    assert len(outbox(runtime, "magic_link")) == 1
    with transaction(runtime.factory) as s:
        request_magic_link(s, email="ben@importer.example", now=start + timedelta(minutes=11))
    assert len(outbox(runtime, "magic_link")) == 2
