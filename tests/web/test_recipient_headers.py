"""Every recipient page refuses to be framed (clickjacking): CSP frame-ancestors 'none' and X-Frame-Options DENY."""

from __future__ import annotations

import httpx
import pytest

from sendwell.db.models import Subscription, Topic
from sendwell.db.session import transaction
from sendwell.optout.tokens import SALT_KEEP, SALT_PREFERENCES, SALT_UNSUBSCRIBE, TokenData, make_confirm_token, make_token
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact


@pytest.fixture
def web(runtime, unused_port):
    # A real socket: the one-click fast path is ASGI middleware in front of routing.
    with BackgroundServer(create_app(runtime, outbox=False), unused_port) as srv:
        with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as client:
            yield client


def assert_not_frameable(response: httpx.Response, status: int = 200) -> None:
    assert response.status_code == status, response.text
    assert response.headers.get("content-security-policy") == "frame-ancestors 'none'", response.headers
    assert response.headers.get("x-frame-options") == "DENY", response.headers


def test_every_recipient_page_forbids_framing(runtime, web) -> None:
    with transaction(runtime.factory) as s:
        topic = Topic(slug="led", name="LED panels")
        s.add(topic)
        s.flush()
        people = [make_contact(s, email=f"p{i}@licht.example", language="en") for i in range(3)]
        for person in people:
            s.add(Subscription(contact_id=person.id, topic_id=topic.id))
        ids = [person.id for person in people]
    keys = runtime.settings.secret_keys

    def link(prefix: str, salt: str, contact_id: int) -> str:
        return f"/{prefix}/{make_token(keys, salt, TokenData(contact_id, None, None))}"

    u0, u1, u2 = (link("u", SALT_UNSUBSCRIBE, i) for i in ids)
    assert_not_frameable(web.get(u0))                                                  # the unsubscribe page
    assert_not_frameable(web.post(f"{u0}/alternative", data={"choice": "monthly"}))
    assert_not_frameable(web.post(u0, data={"source": "page"}))                        # the page's own button
    assert_not_frameable(web.post(f"{u0}/reason", data={"reason": "too_many"}))
    assert_not_frameable(web.post(f"{u0}/undo"))
    assert_not_frameable(web.post(u1))                                                 # RFC 8058 one-click, fast path
    assert_not_frameable(web.get(u1))                                                  # already unsubscribed
    assert_not_frameable(web.post(u2, params={"lang": "en"}))                          # one-click through routing
    p0 = link("p", SALT_PREFERENCES, ids[0])
    assert_not_frameable(web.get(p0))
    assert_not_frameable(web.post(p0, data={"language": "en"}))
    k0 = link("k", SALT_KEEP, ids[0])
    assert_not_frameable(web.get(k0))
    assert_not_frameable(web.post(k0))
    c0 = f"/c/{make_confirm_token(keys, ids[0])}"
    assert_not_frameable(web.get(c0))
    assert_not_frameable(web.post(c0))
    assert_not_frameable(web.get("/manage"))
    assert_not_frameable(web.post("/manage", data={"email": "p0@licht.example"}))
    # The invalid-link page and the one-click refusals (fast path and routed).
    assert_not_frameable(web.get("/u/not-a-token"), 404)
    assert_not_frameable(web.get("/p/not-a-token"), 404)
    assert_not_frameable(web.post("/u/not-a-token"), 400)
    assert_not_frameable(web.post("/u/not-a-token", params={"lang": "en"}), 400)
    gone = link("u", SALT_UNSUBSCRIBE, 999999)
    assert_not_frameable(web.post(gone), 404)
    assert_not_frameable(web.post(gone, params={"lang": "en"}), 404)
