"""Forged, truncated, re-signed and other-contact tokens change nothing on any route; links never expire."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from sendwell.db.models import Contact, Event, OutboxMessage, Suppression
from sendwell.db.session import transaction
from sendwell.optout.tokens import (
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    TokenData,
    make_mailto_token,
    make_token,
    read_token,
)
from tests.helpers import make_contact
from tests.optout.conftest import token

ROUTES = [("post", "/u/{t}", {"List-Unsubscribe": "One-Click"}), ("post", "/u/{t}/alternative", {"choice": "monthly"}),
          ("post", "/u/{t}/reason", {"reason": "other"}), ("post", "/u/{t}/undo", {}),
          ("post", "/p/{t}", {"frequency": "monthly", "pause": "6"}), ("post", "/c/{t}", {}),
          ("get", "/u/{t}", None), ("get", "/p/{t}", None), ("get", "/c/{t}", None)]


def _snapshot(runtime):
    with transaction(runtime.factory) as s:
        contacts = [(c.frequency_tier, c.paused_until, c.language) for c in s.scalars(select(Contact).order_by(Contact.id))]
        return (contacts, s.scalars(select(Suppression.id)).all(), s.scalars(select(Event.id)).all(),
                s.scalars(select(OutboxMessage.id)).all())


@pytest.mark.parametrize("mangle", ["forged", "truncated", "other_key", "other_purpose", "garbage"])
def test_bad_tokens_change_nothing_on_any_route(runtime, web, mangle) -> None:
    """Rule 4: only a token we signed, for this purpose, acts; everything else is a 4xx."""
    with transaction(runtime.factory) as s:
        victim = make_contact(s)
    good = token(runtime, victim.id)
    bad = {
        "forged": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "truncated": good[: len(good) // 2],
        "other_key": token(runtime, victim.id, keys=["an-attacker-key"]),
        "other_purpose": token(runtime, victim.id, purpose=SALT_PREFERENCES),
        "garbage": "x" * 40,
    }[mangle]
    web.post(f"/u/{token(runtime, victim.id)}/alternative", data={"choice": "launches_only"})
    before = _snapshot(runtime)
    for verb, route, data in ROUTES:
        if mangle == "other_purpose" and route.startswith("/p/"):
            continue  # that one is a valid preference token there
        response = getattr(web, verb)(route.format(t=bad), **({"data": data} if data is not None else {}))
        assert 400 <= response.status_code < 500, (route, response.status_code)
    assert _snapshot(runtime) == before


def test_a_token_acts_only_on_its_own_contact(runtime, web) -> None:
    """Another contact's token unsubscribes that contact, never this one; ids are not guessable."""
    with transaction(runtime.factory) as s:
        mine, other = make_contact(s), make_contact(s)
    mine_token = token(runtime, mine.id)
    payload, _, signature = mine_token.partition(".")
    other_payload = token(runtime, other.id).partition(".")[0]
    assert web.post(f"/u/{other_payload}.{signature}", data={}).status_code == 400  # spliced: refused
    web.post(f"/u/{mine_token}", data={})
    with transaction(runtime.factory) as s:
        assert s.scalars(select(Suppression.contact_id)).all() == [mine.id]


def test_links_keep_working_after_400_days(runtime, monkeypatch) -> None:
    """Rule 11: tokens carry no timestamp, so a token minted 400 days ago still verifies."""
    keys = runtime.settings.secret_keys
    minted = make_token(keys, SALT_UNSUBSCRIBE, TokenData(7, 3, None))
    later = time.time() + 400 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    assert read_token(keys, SALT_UNSUBSCRIBE, minted) == TokenData(7, 3, None)
    assert make_token(keys, SALT_UNSUBSCRIBE, TokenData(7, 3, None)) == minted  # nothing time-bound inside


_IDS = st.integers(min_value=1, max_value=2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(contact=_IDS, campaign=st.none() | _IDS, topic=st.none() | _IDS,
       purpose=st.sampled_from([SALT_UNSUBSCRIBE, SALT_PREFERENCES]))
def test_the_hand_written_token_is_the_serializer_s_own(contact, campaign, topic, purpose) -> None:
    # make_token writes the payload itself instead of URLSafeSerializer.dumps (speed): the
    # same bytes (links in mails already sent were made by dumps), read back by loads.
    keys = ["old-key-0123456789", "new-key-0123456789"]
    made = make_token(keys, purpose, TokenData(contact, campaign, topic))
    assert made == URLSafeSerializer(keys, salt=purpose).dumps([contact, campaign or 0, topic or 0])
    assert read_token(keys, purpose, made) == TokenData(contact, campaign, topic)


def test_repetitive_ids_are_compressed_as_the_serializer_does() -> None:
    keys = ["new-key-0123456789"]
    made = make_token(keys, SALT_UNSUBSCRIBE, TokenData(10000, 10000, 10000))
    assert made.startswith(".") and made == URLSafeSerializer(keys, salt=SALT_UNSUBSCRIBE).dumps([10000] * 3)


@settings(max_examples=200, deadline=None)
@given(contact=st.integers(1, 10**12), campaign=st.none() | st.integers(1, 10**9), send_id=st.integers(1, 10**12))
def test_mailto_and_verp_signatures_are_those_of_mails_already_sent(contact, campaign, send_id) -> None:
    # Both now encode only the MAC bytes they keep; the addresses must not change.
    import base64
    import hashlib
    import hmac as hmac_

    from sendwell.delivery.verp import verp_detail
    from sendwell.optout.tokens import _MAILTO_SALT, _b36

    key = "new-key-0123456789"
    body = f"{_b36(contact)}-{_b36(campaign or 0)}"
    old_mailto = base64.b32encode(hmac_.new(key.encode(), _MAILTO_SALT + body.encode(), hashlib.sha256).digest())
    assert make_mailto_token([key], contact, campaign).endswith(old_mailto.decode().lower()[:16])
    old_verp = base64.b32encode(hmac_.new(key.encode(), b"sendwell.verp" + str(send_id).encode(), hashlib.sha256).digest())
    assert verp_detail([key], send_id) == f"{send_id}.{old_verp.decode().lower()[:10]}"
