"""Choosing the language of system text."""

from __future__ import annotations

import pytest

from sendwell.i18n import choose_language, normalise_language, translations


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("de", "de"), ("de-AT", "de"), ("zh-CN", "zh_Hans"), ("zh", "zh_Hans"), ("zh-Hans", "zh_Hans"),
     ("zh-TW", None), ("fr_CA", "fr"), ("es-419", "es"), ("en-GB", "en"), ("pt-BR", None), ("", None), ("x!", None)],
)
def test_normalise(tag, expected) -> None:
    assert normalise_language(tag) == expected


def test_contact_language_wins_then_accept_language_then_english() -> None:
    assert choose_language("fr", "de-DE,de;q=0.9") == "fr"
    assert choose_language("pt", "ja;q=0.9, es;q=0.8, de;q=0.95") == "de"
    assert choose_language(None, "ja, ko") == "en"


def test_missing_catalog_falls_back_to_the_source_text() -> None:
    assert translations("de", "no-such-domain").gettext("Unsubscribe") == "Unsubscribe"
