"""Readability warnings (the seed's guidance) fire on long, loud, heavy mail and stay quiet otherwise."""

from __future__ import annotations

import pytest

from sendwell.content.lint import LINE_COLUMNS, lint_rendered
from tests.content.conftest import LINKS, render

SHORT = "<p>Dear {{ first_name }},</p><p>Our 2026 LED panels use 30% less energy.</p><p>Reply for the price list.</p>"


def warnings(settings, **kwargs) -> dict[str, str]:
    """Warning messages by code (several findings of one code are joined with " | ")."""
    out: dict[str, str] = {}
    for f in lint_rendered(render(settings, **kwargs), LINKS):
        if f.severity == "warning":
            out[f.code] = f"{out[f.code]} | {f.message}" if f.code in out else f.message
    return out


def test_a_short_plain_mail_has_no_warning(content_settings) -> None:
    assert warnings(content_settings, html=SHORT, subject="New LED panels for {{ contact.company }}") == {}


def test_more_than_five_paragraphs(content_settings) -> None:
    assert "too-many-paragraphs" not in warnings(content_settings, html="<p>x</p>" * 5)
    found = warnings(content_settings, html="<p>x</p>" * 6)
    assert found["too-many-paragraphs"].startswith("6 paragraphs")


def test_more_than_three_lines_in_a_paragraph(content_settings) -> None:
    three_lines = "word " * (3 * LINE_COLUMNS // 5)
    assert "long-paragraph" not in warnings(content_settings, html=f"<p>{three_lines.strip()}</p>")
    found = warnings(content_settings, html=f"<p>{three_lines} more words here</p>")
    assert "a paragraph of 4 lines" in found["long-paragraph"]


def test_chinese_characters_count_double_width(content_settings) -> None:
    assert "long-paragraph" not in warnings(content_settings, html="<p>" + "节能" * 60 + "</p>")  # 240 columns
    assert "long-paragraph" in warnings(content_settings, html="<p>" + "节能" * 61 + "</p>")


def test_long_subject(content_settings) -> None:
    assert "long-subject" not in warnings(content_settings, html=SHORT, subject="x" * 60)
    assert "61 characters" in warnings(content_settings, html=SHORT, subject="x" * 61)["long-subject"]


@pytest.mark.parametrize(("subject", "fires"), [
    ("HUGE LED SALE THIS WEEK", True), ("BIG NEWS: NEW PANELS for you", True), ("New LED panels with CE and UL", False),
    ("LED", False), ("新款LED面板", False),
])
def test_subject_in_capitals(content_settings, subject, fires) -> None:
    assert ("capital-subject" in warnings(content_settings, html=SHORT, subject=subject)) is fires


@pytest.mark.parametrize(("html", "subject", "phrase"), [
    ("<p>Click here for prices.</p>", "Prices", "click here"),
    ("<p>Prices</p>", "Act now: 20% off", "act now"),
    ("<p>Jetzt kaufen und sparen.</p>", "Angebot", "jetzt kaufen"),
    ("<p>Échantillons gratuits.</p>", "Offre", "gratuit"),
    ("<p>Muestras gratis.</p>", "Oferta", "gratis"),
    ("<p>限时特价，立即购买！</p>", "新品", "立即购买"),
])
def test_spam_trigger_phrases(content_settings, html, subject, phrase) -> None:
    assert f"spam-trigger phrase {phrase!r}" in warnings(content_settings, html=html, subject=subject)["spam-phrase"]


def test_words_that_merely_contain_a_phrase_are_quiet(content_settings) -> None:
    # "gratuitous" is not "gratuit"; "winners" in a product name is not "winner" … but is close.
    assert "spam-phrase" not in warnings(content_settings, html="<p>No gratuitous claims; clickhere.com</p>")


def test_images_without_alt_and_image_heavy_mail(content_settings) -> None:
    banner = '<img src="https://bright-lighting.example/banner.png"{alt}>'
    found = warnings(content_settings, html=banner.format(alt="") + "<p>Our panels.</p>")
    assert "image-alt" in found and "image-heavy" in found
    text = "<p>Our LED panels save 30% energy, ship with CE and UL documents and a five-year warranty.</p>" * 5
    quiet = warnings(content_settings, html=banner.format(alt=' alt="LED panel range"') + text)
    assert "image-alt" not in quiet and "image-heavy" not in quiet


def test_mail_over_100_kb(content_settings) -> None:
    assert "too-large" not in warnings(content_settings, html="<p>x</p>" + "<!-- pad -->" * 100)
    found = warnings(content_settings, html="<p>x</p>" + '<span style="color:#222">y</span>' * 4000)
    assert "Gmail clips" in found["too-large"]
