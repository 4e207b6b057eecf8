"""Recipient pages, one-click and click tracking read the runtime's current settings on every request.

An admin edit or a worker reload swaps a new Settings object into the runtime
(Runtime.replace_settings); a running app must show and sign with it at once, not with the
settings it was built with.
"""

from __future__ import annotations

import re
import warnings

import pytest

from sendwell.db.session import transaction
from sendwell.insight.tracking import make_click_token
from sendwell.optout.tokens import SALT_PREFERENCES, SALT_UNSUBSCRIBE, TokenData, make_token, read_token
from sendwell.web.app import create_app
from tests.helpers import make_contact
from tests.optout.conftest import suppressed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NEW_KEY = "rotated-secret-key-9876543210"


@pytest.fixture
def client(runtime):
    with TestClient(create_app(runtime, outbox=False), follow_redirects=False) as client:
        yield client


@pytest.fixture
def contact_id(runtime) -> int:
    with transaction(runtime.factory) as s:
        return make_contact(s, email="anna@licht.example", language="en").id


def _token(runtime, contact_id: int, salt: str = SALT_UNSUBSCRIBE) -> str:
    return make_token(runtime.settings.secret_keys, salt, TokenData(contact_id, None, None))


def _rotate_to_new_key_only(runtime) -> None:
    # The old key dropped: anything still signed or verified with it is caught.
    runtime.replace_settings(runtime.settings.replace(secret_key=NEW_KEY))


def test_unsubscribe_page_shows_the_new_company_name_and_sender(runtime, client, contact_id) -> None:
    before = client.get(f"/u/{_token(runtime, contact_id)}")
    assert before.status_code == 200 and "Ningbo Bright Lighting Co., Ltd." in before.text

    runtime.replace_settings(runtime.settings.replace(company_name="New Name Ltd",
                                                      from_="New Name Sales <sales@new-name.example>"))

    after = client.get(f"/u/{_token(runtime, contact_id)}")
    assert after.status_code == 200
    assert "New Name Ltd" in after.text and "Ningbo Bright Lighting Co., Ltd." not in after.text
    assert "New Name Sales" in after.text


def test_invalid_link_page_shows_the_new_company_name(runtime, client) -> None:
    runtime.replace_settings(runtime.settings.replace(company_name="New Name Ltd"))
    page = client.get("/u/not-a-token")
    assert page.status_code == 404 and "New Name Ltd" in page.text


def test_links_on_the_pages_are_signed_with_the_new_key(runtime, client, contact_id) -> None:
    _rotate_to_new_key_only(runtime)

    page = client.get(f"/u/{_token(runtime, contact_id)}")
    assert page.status_code == 200
    preferences_token = re.search(r'href="/p/([^"?]+)', page.text).group(1)
    assert read_token([NEW_KEY], SALT_PREFERENCES, preferences_token).contact_id == contact_id

    prefs = client.get(f"/p/{_token(runtime, contact_id, SALT_PREFERENCES)}")
    assert prefs.status_code == 200
    unsubscribe_token = re.search(r'action="/u/([^"/?]+)"', prefs.text).group(1)
    assert read_token([NEW_KEY], SALT_UNSUBSCRIBE, unsubscribe_token).contact_id == contact_id


def test_one_click_verifies_with_the_new_key(runtime, client, contact_id) -> None:
    old_token = _token(runtime, contact_id)
    _rotate_to_new_key_only(runtime)

    # The fast path (a mail client's bare POST) and the routed view (the page's own form).
    assert client.post(f"/u/{old_token}").status_code == 400
    assert client.post(f"/u/{old_token}", data={"source": "page"}).status_code == 400
    assert client.post(f"/u/{_token(runtime, contact_id)}", data={"source": "page"}).status_code == 200
    assert client.post(f"/u/{_token(runtime, contact_id)}").status_code == 200
    assert suppressed(runtime) == 1


def test_click_tracking_verifies_with_the_new_key(runtime, client) -> None:
    old_token = make_click_token(runtime.settings.secret_keys, 1, "https://example.com/")
    _rotate_to_new_key_only(runtime)
    assert client.get(f"/r/{old_token}").status_code == 404
