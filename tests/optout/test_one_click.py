"""RFC 8058 one-click over real HTTP: COMPLIANCE rows 4–8 and 10, on every backend."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from sendwell.db.models import Consent, Event, Suppression
from sendwell.db.session import transaction
from sendwell.optout.tokens import SALT_PREFERENCES, SALT_UNSUBSCRIBE, TokenData, make_token
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact


@pytest.fixture
def server(runtime, unused_port):
    with BackgroundServer(create_app(runtime), unused_port) as srv:
        yield srv


@pytest.fixture
def contact(runtime):
    with transaction(runtime.factory) as s:
        return make_contact(s, email="anna@licht.example", first_name="<b>Anna</b>", language="en")


def url_for(runtime, server, contact, purpose=SALT_UNSUBSCRIBE, keys=None, campaign_id=None) -> str:
    token = make_token(keys or runtime.settings.secret_keys, purpose, TokenData(contact.id, campaign_id, None))
    return f"{server.url}/{'u' if purpose == SALT_UNSUBSCRIBE else 'p'}/{token}"


def counts(runtime) -> tuple[int, int]:
    with transaction(runtime.factory) as s:
        return (s.scalar(select(func.count()).select_from(Suppression)),
                s.scalar(select(func.count()).select_from(Event).where(Event.kind == "unsubscribed")))


def test_get_shows_a_page_and_changes_nothing(runtime, server, contact) -> None:
    """Row 8: link scanners prefetch; a GET never unsubscribes."""
    response = httpx.get(url_for(runtime, server, contact))
    assert response.status_code == 200
    assert "an***@licht.example" in response.text
    assert "Unsubscribe from all" in response.text and 'method="post"' in response.text
    assert counts(runtime) == (0, 0)


def test_post_urlencoded_unsubscribes_before_responding(runtime, server, contact) -> None:
    """Rows 5, 6, 10: no cookies, no redirect, effective when the 200 arrives."""
    response = httpx.post(url_for(runtime, server, contact), data={"List-Unsubscribe": "One-Click"},
                          follow_redirects=False)
    assert response.status_code == 200 and "location" not in response.headers
    assert counts(runtime) == (1, 1)
    with transaction(runtime.factory) as s:
        event = s.scalar(select(Event))
        assert event.method == "one_click" and event.ip == "127.0.0.1"
        assert all(c.withdrawn_at is not None for c in s.scalars(select(Consent)))


def test_post_multipart_unsubscribes(runtime, server, contact) -> None:
    response = httpx.post(url_for(runtime, server, contact), files={"List-Unsubscribe": (None, "One-Click")},
                          follow_redirects=False)
    assert response.status_code == 200
    assert counts(runtime) == (1, 1)


def test_post_with_odd_or_empty_body_still_counts(runtime, server, contact) -> None:
    response = httpx.post(url_for(runtime, server, contact), content=b"", follow_redirects=False)
    assert response.status_code == 200
    assert counts(runtime) == (1, 1)


def test_second_post_is_harmless_and_keeps_the_first_time(runtime, server, contact) -> None:
    """Row 7: idempotent — one event, first timestamp kept."""
    url = url_for(runtime, server, contact)
    httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    with transaction(runtime.factory) as s:
        first = s.scalar(select(Suppression.created_at))
    again = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
    assert counts(runtime) == (1, 1)
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Suppression.created_at)) == first


@pytest.mark.parametrize("mangle", ["forged", "truncated", "other_key", "other_purpose"])
def test_bad_tokens_change_nothing(runtime, server, contact, mangle) -> None:
    """Row 4: a tampered or random token is refused with a 4xx."""
    url = url_for(runtime, server, contact)
    if mangle == "forged":
        url = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    elif mangle == "truncated":
        url = url[:-10]
    elif mangle == "other_key":
        url = url_for(runtime, server, contact, keys=["an-attacker-key"])
    else:
        url = url.replace("/u/", "/u/").rsplit("/", 1)[0] + "/" + url_for(
            runtime, server, contact, purpose=SALT_PREFERENCES).rsplit("/", 1)[1]
    response = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    assert 400 <= response.status_code < 500
    assert counts(runtime) == (0, 0)


def test_rotated_keys_keep_old_links_working(runtime, server, contact) -> None:
    """Row 11: links keep working; a token signed with a retired-but-listed key still verifies."""
    old = url_for(runtime, server, contact, keys=["the-old-key"])
    runtime.replace_settings(runtime.settings.replace(secret_key="the-old-key," + runtime.settings.secret_key))
    response = httpx.post(old, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and counts(runtime) == (1, 1)


def test_page_form_and_preferences_escape_names_and_record_the_method(runtime, server, contact) -> None:
    prefs = httpx.get(url_for(runtime, server, contact, purpose=SALT_PREFERENCES))
    assert prefs.status_code == 200 and "<b>Anna" not in prefs.text
    page = httpx.get(url_for(runtime, server, contact))
    assert 'name="source" value="page"' in page.text
    httpx.post(url_for(runtime, server, contact), data={"List-Unsubscribe": "One-Click", "source": "page"})
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Event.method)) == "page"
