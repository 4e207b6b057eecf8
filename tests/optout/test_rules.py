"""COMPLIANCE rows proven at the service level: 14 (mailto seam), 19 (no override), and the catalogs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from sendwell.campaigns.service import create_campaign
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign
from sendwell.i18n import LOCALES_DIR, SUPPORTED
from sendwell.optout.service import unsubscribe_contact
from sendwell.optout.tokens import make_mailto_token, read_mailto_token
from sendwell.policy.eligibility import skip_reason
from tests.helpers import make_contact


@pytest.mark.parametrize("kind", ["marketing", "launch", "transactional", "reconfirmation"])
def test_no_campaign_kind_reaches_an_unsubscribed_contact(runtime, kind) -> None:
    """Row 19: every campaign kind skips unsubscribed contacts, including 'asking them back'."""
    with transaction(runtime.factory) as s:
        gone, stays = make_contact(s, country="DE"), make_contact(s, country="DE")
        unsubscribe_contact(s, contact_id=gone.id, method="page")
        campaign = create_campaign(s, settings=runtime.settings, name="Come back?", subject="We miss you",
                                   html="<p>x</p>", segment="", kind=kind)
        plan_campaign(s, campaign=campaign)
        from sqlalchemy import select

        from sendwell.db.models import Send

        states = dict(s.execute(select(Send.contact_id, Send.skip_reason)).all())
    assert states[gone.id] == "unsubscribed"
    assert states[stays.id] is None
    assert "override" not in skip_reason.__code__.co_varnames  # no parameter can switch it off


def test_mailto_unsubscribe_seam(runtime) -> None:
    """Row 14 (our half): a mailto token from the List-Unsubscribe header identifies the contact, and
    `unsubscribe_contact(method="mailto")` suppresses it and queues the thank-you. The inbound
    listener that receives the mail is tested with the feedback context."""
    keys = runtime.settings.secret_keys
    with transaction(runtime.factory) as s:
        c = make_contact(s)
    data = read_mailto_token(keys, make_mailto_token(keys, c.id, 4).upper())  # MTAs may fold case
    with transaction(runtime.factory) as s:
        result = unsubscribe_contact(s, contact_id=data.contact_id, campaign_id=data.campaign_id, method="reply")
    assert result.is_new and result.contact_id == c.id


_MSGID = re.compile(r'_\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+)', re.S)
_SOURCES = [*sorted((Path(__file__).parents[2] / "src/sendwell/web/templates").glob("*.html")),
            Path(__file__).parents[2] / "src/sendwell/optout/mail.py"]


def _used_msgids() -> set[str]:
    found = set()
    for path in _SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in _MSGID.finditer(text):
            found.add("".join(re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1))))
        found.update(re.findall(r"_\('([^']*)'\)", text))
    return found


@pytest.mark.parametrize("language", [lang for lang in SUPPORTED if lang != "en"])
def test_every_page_string_is_translated(language) -> None:
    used = _used_msgids()
    assert len(used) > 60
    folder = LOCALES_DIR / language / "LC_MESSAGES"
    strings: dict[str, str] = {}
    # The `pages` domain is pages.po plus its feature files (pages-signup.po, …), merged at load.
    for path in [folder / "pages.po", *sorted(folder.glob("pages-*.po"))]:
        with path.open("rb") as fh:
            strings.update({m.id: m.string for m in read_po(fh, locale=language) if m.id and m.string})
    missing = sorted(m for m in used if not strings.get(m))
    assert missing == []
    for msgid in used:
        placeholders = sorted(re.findall(r"%\((\w+)\)s", msgid))
        assert sorted(re.findall(r"%\((\w+)\)s", strings[msgid])) == placeholders, msgid
