"""Each blocking compliance rule fires on a bad campaign and stays quiet on a near miss."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sendwell.content.lint import (
    ERROR,
    lint_rendered,
    lint_settings,
    lint_templates,
    render_failure,
)
from sendwell.content.render import Rendered, TemplateError
from tests.content.conftest import LINKS, render

CLEAN_HTML = "<p>Dear {{ first_name }},</p><p>Our CE-marked LED panels for {{ contact.company }}.</p>"


def codes(findings, severity=ERROR) -> set[str]:
    return {f.code for f in findings if f.severity == severity}


def lint_all(settings, *, html=CLEAN_HTML, subject="New LED panels", text="") -> set[str]:
    found = lint_templates(subject=subject, html=html, text=text) + lint_settings(settings, regions={"eu"})
    found += lint_rendered(render(settings, html=html, subject=subject, text=text), LINKS)
    return codes(found)


def test_a_compliant_campaign_has_no_blocking_finding(content_settings) -> None:
    assert lint_all(content_settings) == set()


# ---- row 15: sender identity, postal address, contact details ------------------------------
@pytest.mark.parametrize(("override", "code"), [
    ({"company_name": ""}, "sender-identity"),
    ({"from_": "no address here"}, "sender-identity"),
    ({"postal_address": "  "}, "postal-address"),
    ({"contact_email": "", "contact_phone": "", "website": ""}, "contact-details"),
])
def test_missing_identity_blocks(content_settings, override, code) -> None:
    settings = content_settings.replace(**override)
    findings = [f for f in lint_settings(settings) if f.code == code]
    assert findings and findings[0].severity == ERROR and findings[0].rule == 15
    assert "COMPLIANCE #15" in findings[0].line()


def test_identity_with_only_a_phone_number_is_enough_for_casl(content_settings) -> None:
    settings = content_settings.replace(contact_email="", website="")
    assert codes(lint_settings(settings)) == set()


def test_an_address_without_any_number_is_only_a_warning(content_settings) -> None:
    settings = content_settings.replace(postal_address="Somewhere in Ningbo")
    found = lint_settings(settings)
    assert codes(found) == set() and "postal-address" in codes(found, "warning")


# ---- row 9: a visible unsubscribe link -------------------------------------------------------
HIDING_TEMPLATES = [
    ("<style>.sendwell-footer{display:none}</style><p>Hi</p>", "display:none"),
    ("<style>.sendwell-footer a{display:none !important}</style><p>Hi</p>", "display:none"),
    ("<style>div.sendwell-footer{visibility:hidden}</style><p>Hi</p>", "visibility:hidden"),
    ("<style>.sendwell-footer{font-size:0 !important}</style><p>Hi</p>", "font size 0px"),
    ("<style>.sendwell-footer a{font-size:2px !important}</style><p>Hi</p>", "font size 2px"),
    ("<style>.sendwell-footer a{color:#ffffff !important}</style><p>Hi</p>", "too close to the background"),
    ('<div style="background:#555555"><p>Hi</p>', "too close to the background"),
    ("<style>.sendwell-footer a{color:transparent !important}</style><p>Hi</p>", "transparent"),
    ("<style>.sendwell-footer a{color:rgba(85,85,85,0) !important}</style><p>Hi</p>", "transparent"),
    ('<div style="opacity:0"><p>Hi</p>', "opacity"),
    ('<div style="mso-hide:all"><p>Hi</p>', "mso-hide"),
    ('<div style="max-height:0;overflow:hidden"><p>Hi</p>', "zero size"),
    ('<div style="height:1px;overflow:hidden"><p>Hi</p>', "zero size"),
    ("<style>.sendwell-footer{line-height:0 !important;overflow:hidden}</style><p>Hi</p>", "zero size"),
    ('<div style="position:absolute;left:-9999px"><p>Hi</p>', "off-screen"),
    ('<div style="display:none"><p>Hi</p>', "display:none"),
    ("<p>Hi</p><noscript>", "noscript"),
    ("<p>Hi</p><template>", "template"),
    ("<p>Hi</p><div hidden>", "hidden"),
]


@pytest.mark.parametrize(("html", "reason"), HIDING_TEMPLATES)
def test_an_unsubscribe_link_hidden_by_the_template_blocks(content_settings, html, reason) -> None:
    findings = lint_rendered(render(content_settings, html=html), LINKS)
    hidden = [f for f in findings if f.code == "unsubscribe-hidden"]
    assert hidden, [f.line() for f in findings]
    assert hidden[0].rule == 9 and hidden[0].severity == ERROR
    assert reason in hidden[0].message


@pytest.mark.parametrize("html", [
    '<div style="display:none;max-height:0;overflow:hidden">Preheader: samples in 7 days</div><p>Hi</p>',
    '<div style="height:40px;overflow:hidden">Banner</div><p>Hi</p>',
    "<style>a{color:#ffffff}</style><p>Hi</p>",  # the footer's own inline colour wins
    '<table><tr><td style="background:#222;color:#fff">Dark banner</td></tr></table><p>Hi</p>',
    '<p>Hi <a href="{{ unsubscribe_url }}">unsubscribe here</a></p>',
    "<style>.sendwell-footer{display:none}</style>".replace("sendwell-footer", "promo") + "<p>Hi</p>",
])
def test_styles_that_leave_the_link_visible_are_quiet(content_settings, html) -> None:
    findings = lint_rendered(render(content_settings, html=html), LINKS)
    assert not {"unsubscribe-hidden", "unsubscribe-missing"} & codes(findings), [f.line() for f in findings]


def test_a_footer_swallowed_by_an_unclosed_comment_is_missing(content_settings) -> None:
    findings = lint_rendered(render(content_settings, html="<p>Hi</p><!-- draft notes"), LINKS)
    missing = [f for f in findings if f.code == "unsubscribe-missing"]
    assert missing and missing[0].rule == 9


def test_a_text_part_without_the_link_is_missing(content_settings) -> None:
    good = render(content_settings)
    assert "unsubscribe-missing" not in codes(lint_rendered(good, LINKS))
    bad = Rendered(subject=good.subject, html=good.html, text="Hello, no footer here", body_html=good.body_html,
                   body_text="Hello")
    assert "no unsubscribe link in the text part" in [f.message for f in lint_rendered(bad, LINKS)]


# ---- row 16: deceptive subject -----------------------------------------------------------------
@pytest.mark.parametrize("subject", [
    "Re: your order", "RE:price list", "Fwd: LED catalogue", "FW: samples", "AW: Angebot", "WG: Muster",
    "TR: offre", "RV: oferta", "回复：报价单", "回复: 报价单", "转发：新品", "[Ext] Re: samples", "Re[2]: follow-up",
    "{{ 'RE' }}: rendered later",
])
def test_reply_or_forward_prefix_without_a_thread_blocks(content_settings, subject) -> None:
    found = lint_templates(subject=subject, html=CLEAN_HTML, text="")
    found += lint_rendered(render(content_settings, subject=subject), LINKS)
    deceptive = [f for f in found if f.code == "deceptive-subject"]
    assert deceptive and deceptive[0].rule == 16


@pytest.mark.parametrize("subject", [
    "Replacement parts for your line", "Rebate: 10% for distributors", "Regarding our LED panels",
    "Forward-looking LED range", "Angebot: LED-Panels", "回顾2026年新品",
])
def test_honest_subjects_are_quiet(content_settings, subject) -> None:
    assert "deceptive-subject" not in lint_all(content_settings, subject=subject)


# ---- row 24: a text part, known variables --------------------------------------------------------
def test_image_only_mail_without_text_blocks(content_settings) -> None:
    html = '<img src="https://bright-lighting.example/banner.png" alt="">'
    missing = [f for f in lint_rendered(render(content_settings, html=html), LINKS) if f.code == "missing-text"]
    assert missing and missing[0].rule == 24


def test_image_mail_with_a_text_version_is_quiet(content_settings) -> None:
    html = '<img src="https://bright-lighting.example/banner.png" alt="">'
    rendered = render(content_settings, html=html, text="Our new LED panels: see the catalogue.")
    assert "missing-text" not in codes(lint_rendered(rendered, LINKS))


@pytest.mark.parametrize(("where", "source", "needle"), [
    ("subject", "Hello {{ fist_name }}", "'fist_name'"),
    ("html", "<p>{{ config }}</p>", "'config'"),
    ("html", "<p>{{ contact.fax }}</p>", "contact has no field 'fax'"),
    ("html", "<p>{{ contact['phone'] }}</p>", "contact has no field 'phone'"),
    ("text", "{{ sender.bank_account }}", "sender has no field 'bank_account'"),
])
def test_unknown_variables_block(where, source, needle) -> None:
    kwargs = {"subject": "s", "html": "<p>x</p>", "text": ""} | {where: source}
    unknown = [f for f in lint_templates(**kwargs) if f.code == "unknown-variable"]
    assert unknown and needle in unknown[0].message and unknown[0].rule == 24


def test_known_variables_loops_and_blocks_are_quiet(content_settings) -> None:
    html = (
        "{% set greeting = 'Dear' %}<p>{{ greeting }} {{ first_name }} {{ last_name }} of {{ contact.company }},</p>"
        "{% for tag in contact.tags %}{{ loop.index }}. {{ tag }}{% endfor %}"
        "<p>{{ contact.custom.get('size', 'M') }} {{ sender.website }} {{ region }} {{ industry }}</p>"
        '{% region "eu" %}CE{% else %}UL{% endregion %}{% stage "customer" %}Thanks{% endstage %}'
    )
    assert lint_all(content_settings, html=html, subject="{{ contact.company }}: panels") == set()


def test_a_dry_render_error_is_reported_as_an_unknown_variable(content_settings) -> None:
    with pytest.raises(TemplateError) as info:
        render(content_settings, html="<p>{{ contact.custom.size }}</p>")
    finding = render_failure(info.value)
    assert finding.code == "unknown-variable" and finding.rule == 24 and "size" in finding.message


# ---- row 23: DKIM configured and aligned ----------------------------------------------------------
def test_no_dkim_key_blocks(content_settings) -> None:
    settings = content_settings.replace(dkim_domain="", dkim_key_file="")
    assert [f.rule for f in lint_settings(settings) if f.code == "dkim-missing"] == [23]


def test_from_domain_not_aligned_with_dkim_blocks(content_settings) -> None:
    settings = content_settings.replace(from_="Sales <sales@other-brand.example>")
    found = [f for f in lint_settings(settings) if f.code == "dkim-alignment"]
    assert found and "other-brand.example" in found[0].message and found[0].rule == 23


@pytest.mark.parametrize(("from_", "dkim_domain"), [
    ("Sales <sales@bright-lighting.example>", "bright-lighting.example"),
    ("Sales <sales@news.bright-lighting.example>", "bright-lighting.example"),
    ("Sales <sales@bright-lighting.example>", "mail.bright-lighting.example"),
])
def test_aligned_domains_are_quiet(content_settings, from_, dkim_domain) -> None:
    settings = content_settings.replace(from_=from_, dkim_domain=dkim_domain)
    assert codes(lint_settings(settings)) == set()


def test_a_1024_bit_key_is_a_warning(content_settings, tmp_path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "short.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    found = lint_settings(content_settings.replace(dkim_key_file=str(path)))
    assert codes(found) == set() and "dkim-key-size" in codes(found, "warning")


def test_eu_audience_without_privacy_url_is_warned(content_settings) -> None:
    settings = content_settings.replace(privacy_url="")
    assert "privacy-notice" in codes(lint_settings(settings, regions={"eu"}), "warning")
    assert "privacy-notice" not in codes(lint_settings(settings, regions={"us"}), "warning")


def test_finding_lines_name_the_rule(content_settings) -> None:
    found = lint_templates(subject="Re: hello", html="<p>x</p>", text="")
    assert found[0].line().startswith("error [COMPLIANCE #16] deceptive-subject: ")


def test_findings_that_differ_only_by_personalisation_are_one_finding(content_settings) -> None:
    from sendwell.content.lint import merge
    from tests.content.conftest import recipient

    found = []
    for name, label in (("Anna", "eu/de"), ("Bartholomew-Maximilian", "us/en"), ("Christopher-Alexander", "uk/en")):
        rendered = render(content_settings, subject="Re: LED panels for {{ first_name }} and your purchasing team",
                          contact=recipient(first_name=name))
        found += [(f, label) for f in lint_rendered(rendered, LINKS)]
    merged = [(f.code, f.samples) for f in merge(found)]
    assert merged == [("deceptive-subject", ("eu/de", "us/en", "uk/en")), ("long-subject", ("us/en", "uk/en"))]
