"""Every stored code the admin shows has a label in its own vocabulary, and every label a Chinese translation."""

from __future__ import annotations

import pytest

from sendwell.i18n import translations
from sendwell.web.admin.labels import VOCABULARIES, any_label, filters, label


@pytest.mark.parametrize("kind", sorted(VOCABULARIES))
def test_every_code_of_a_vocabulary_has_a_label_and_a_chinese_translation(kind: str) -> None:
    table, codes = VOCABULARIES[kind]
    catalog = translations("zh_Hans", "admin")
    assert codes, kind
    missing = [code for code in codes if code not in table]
    assert missing == [], f"{kind}: no label for {missing}"
    untranslated = [table[code] for code in codes if catalog.gettext(table[code]) == table[code]]
    assert untranslated == [], f"{kind}: no zh_Hans translation for {untranslated}"


def test_regions_and_reasons_have_their_own_words_for_other() -> None:
    assert label("region", "other") == "Other regions" and label("reason", "other") == "Other reason"
    assert label("industry", "other") == "Other industry"
    zh = translations("zh_Hans", "admin")
    assert len({zh.gettext(label(kind, "other")) for kind in ("region", "reason", "industry")}) == 3


def test_an_operators_own_code_is_shown_as_it_is_and_a_missing_one_as_nothing() -> None:
    assert label("industry", "solar-panels") == "solar-panels"
    assert label("region", None) == "" and any_label(None) == ""
    # The old `|label` keeps its reasons, stages and events.
    assert any_label("too_many") == "Too many emails" and any_label("new_lead") == "New lead"
    assert any_label("other") == "Other reason"


def test_templates_get_one_filter_per_vocabulary() -> None:
    made = filters()
    assert made["method_label"]("one_click") == "One-click unsubscribe"
    assert made["region_label"]("cn") == "China" and made["stage_label"]("new_lead") == "New lead"
    assert made["label"]("unsubscribe_reason") == "Reason given"


def test_label_names_its_vocabulary_when_a_template_knows_it() -> None:
    assert filters()["label"]("other", "region") == "Other regions"
    assert filters()["label"]("lighting", "industry") == "Lighting"


def test_countries_and_languages_are_named_in_the_readers_language() -> None:
    from sendwell.web.admin.labels import country_name, language_name

    assert country_name("DE", "zh_Hans") == "德国" and country_name("DE", "en") == "Germany"
    assert language_name("de", "zh_Hans") == "德语" and language_name("zh-Hans", "en").startswith("Chinese")
    assert country_name("", "en") == "" and language_name("xx-nonsense", "en") == "xx-nonsense"


def test_a_breakdown_row_is_named_by_its_dimension() -> None:
    from sendwell.web.admin.labels import audience_value

    assert audience_value("other", "region", "en") == "Other regions" and audience_value("cn", "region", "en") == "China"
    assert audience_value("DE", "country", "zh_Hans") == "德国" and audience_value("de", "language", "en") == "German"
    assert audience_value(None, "stage", "en") == "–" and audience_value("Spring fair", "campaign", "en") == "Spring fair"


def test_a_preview_sample_is_named_by_region_and_language() -> None:
    from jinja2 import Environment

    from sendwell.web.admin.pages import gettext_for

    env = Environment()
    env.filters.update(filters())
    template = env.from_string("{{ s|sample_label }}")
    assert template.render(s="eu/de", _=gettext_for("en"), lang="en") == "EU and EEA · German"
    assert template.render(s="other/zh-Hans", _=gettext_for("zh_Hans"), lang="zh_Hans") == "其他地区 · 中文 (简体)"


def test_an_events_data_shows_labels_words_and_codes_but_not_its_references() -> None:
    from sendwell.web.admin.labels import event_details

    assert event_details({"reason": "too_many", "text": "Zu viele Mails"}) == {
        "reason": "too_many", "text": "Zu viele Mails", "category": "", "detail": ""}
    bounce = event_details({"classification": "hard", "category": "hard", "status": "5.1.1", "reason": "user unknown",
                            "raw_ref": "sha256:0123abcd", "matched_by": "verp", "recipient": "a@b.example"})
    assert bounce == {"reason": "", "text": "user unknown", "category": "hard", "detail": "status: 5.1.1"}
    assert event_details(None) == {"reason": "", "text": "", "category": "", "detail": ""}
