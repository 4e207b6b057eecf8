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


def test_a_domain_split_by_feature_is_one_catalog(tmp_path, monkeypatch) -> None:
    import sendwell.i18n as i18n

    folder = tmp_path / "zh_Hans" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    po = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "{0}"\nmsgstr "{1}"\n'
    (folder / "admin.po").write_text(po.format("Contacts", "联系人"), encoding="utf-8")
    (folder / "admin-reports.po").write_text(po.format("Link report", "链接报告"), encoding="utf-8")
    (folder / "adminx.po").write_text(po.format("Stray", "不属于"), encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALES_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        catalog = i18n.translations("zh_Hans", "admin")
        assert catalog.gettext("Contacts") == "联系人"
        assert catalog.gettext("Link report") == "链接报告"
        assert catalog.gettext("Stray") == "Stray"
    finally:
        i18n.translations.cache_clear()
