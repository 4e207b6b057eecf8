"""Mails that used to pass the lint: a placeholder sender, an http base URL, CSS that hides the footer,
fake reply subjects, promotion labelled transactional, and ambiguous or empty personalisation."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sendwell.access.users import create_user
from sendwell.campaigns.service import CampaignError, confirm_transactional, create_campaign, update_campaign
from sendwell.cli.main import cli, register_commands
from sendwell.config import Settings
from sendwell.content.lint import ERROR, WARNING, lint_rendered, lint_settings, lint_templates
from sendwell.content.service import ComplianceError, assert_sendable, lint_campaign
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from tests.content.conftest import LINKS, render
from tests.helpers import make_contact, parse_strict, run_once

register_commands()

BUILT_IN_IDENTITY = {name: Settings.model_fields[name].default
                     for name in ("from_", "company_name", "postal_address", "contact_email")}


def found(findings, code: str) -> list:
    return [f for f in findings if f.code == code]


# ---- row 15: a placeholder sender identity ----------------------------------------------------
@pytest.mark.parametrize("override", [
    BUILT_IN_IDENTITY,
    {"company_name": "Example Trading Co."},
    {"company_name": "Your Company Ltd"},
    {"postal_address": "123 Main Street, Springfield"},
    {"from_": "Demo Sender <sales@bright-lighting.example>"},
    {"contact_email": "info@example.com"},
    {"website": "https://shop.test"},
])
def test_a_placeholder_identity_blocks_mail_to_real_people(content_settings, override) -> None:
    settings = content_settings.replace(smtp_url="smtp://127.0.0.1:2525", **override)
    [finding] = found(lint_settings(settings), "sender-placeholder")
    assert finding.severity == ERROR and finding.rule == 15


def test_a_placeholder_identity_only_warns_while_nobody_can_receive_it(content_settings) -> None:
    relay = content_settings.replace(smtp_url="smtp://127.0.0.1:2525", **BUILT_IN_IDENTITY)
    captured = content_settings.replace(smtp_url="capture", **BUILT_IN_IDENTITY)
    assert [f.severity for f in found(lint_settings(relay, real_recipients=False), "sender-placeholder")] == [WARNING]
    assert [f.severity for f in found(lint_settings(captured), "sender-placeholder")] == [WARNING]


def test_a_real_identity_is_no_placeholder(content_settings) -> None:
    settings = content_settings.replace(smtp_url="smtp://127.0.0.1:2525")
    assert found(lint_settings(settings), "sender-placeholder") == []


def test_the_audience_decides_whether_a_placeholder_sender_reaches_people(runtime, db_settings) -> None:
    settings = db_settings.replace(smtp_url="smtp://127.0.0.1:2525", **BUILT_IN_IDENTITY)
    with transaction(runtime.factory) as s:
        make_contact(s, email="anna@licht.example", country="DE", source="Fair")
        make_contact(s, email="buyer@gmail.com", country="US")
        test_only = _campaign(s, settings, segment="country = DE")
        real = _campaign(s, settings, segment="country = US")
    with transaction(runtime.factory) as s:
        assert [f.severity for f in found(lint_campaign(s, settings=settings, campaign_id=test_only).findings,
                                          "sender-placeholder")] == [WARNING]
        with pytest.raises(ComplianceError) as info:
            assert_sendable(s, settings=settings, campaign_id=real)
    assert "sender-placeholder" in {f.code for f in info.value.report.errors}


# ---- row 2: one-click unsubscribe needs https -------------------------------------------------
def test_an_http_base_url_blocks_marketing_mail(content_settings) -> None:
    settings = content_settings.replace(base_url="http://mail.bright-lighting.example")
    [finding] = found(lint_settings(settings), "base-url-http")
    assert finding.severity == ERROR and finding.rule == 2 and "RFC 8058" in finding.message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8025", "http://127.9.9.9", "http://localhost:8000",
                                 "http://[::1]:8025"])
def test_an_http_base_url_on_loopback_only_warns(content_settings, url) -> None:
    assert [f.severity for f in found(lint_settings(content_settings.replace(base_url=url)), "base-url-http")] == [
        WARNING]


def test_https_and_the_test_settings_pass(content_settings) -> None:
    assert content_settings.base_url.startswith("https://")
    assert found(lint_settings(content_settings), "base-url-http") == []


# ---- rows 9 and 15: CSS that hides the footer or the unsubscribe link ------------------------
HIDING = [
    "clip-path: inset(50%)",
    "clip-path: circle(0)",
    "clip-path: polygon(0 0, 0 0, 0 0)",
    "position: absolute; clip: rect(0 0 0 0)",
    "position: absolute; clip: rect(1px, 1px, 1px, 1px)",
    "width: 0; height: 0; overflow: hidden",
    "font-size: 0",
    "position: absolute; left: -9999px",
    "position: relative; left: -9999px",
    "margin-left: -9999px",
    "text-indent: -9999px",
    "opacity: 0",
    "transform: scale(0)",
    "transform: scaleY(0)",
    "transform: translateX(-9999px)",
    "color: #ffffff",
]


@pytest.mark.parametrize("style", HIDING)
def test_css_that_hides_the_footer_blocks(content_settings, style) -> None:
    html = f"<style>.sendwell-footer, .sendwell-footer * {{ {style} }}</style><p>Our new panels.</p>"
    codes = {f.code for f in lint_rendered(render(content_settings, html=html), LINKS) if f.severity == ERROR}
    assert codes & {"unsubscribe-hidden", "footer-hidden"}


@pytest.mark.parametrize("style", ["clip-path: inset(0 round 8px)", "transform: scale(0.9)",
                                   "position: relative; left: 4px"])
def test_harmless_css_on_the_footer_passes(content_settings, style) -> None:
    html = f"<style>.sendwell-footer {{ {style} }}</style><p>Our new panels.</p>"
    assert [f for f in lint_rendered(render(content_settings, html=html), LINKS) if f.severity == ERROR] == []


def test_a_hidden_footer_blocks_even_with_a_visible_unsubscribe_link_of_its_own(content_settings) -> None:
    html = ('<style>.sendwell-footer { clip-path: inset(50%) }</style>'
            '<p>Our new panels. <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')
    errors = [f for f in lint_rendered(render(content_settings, html=html), LINKS) if f.severity == ERROR]
    assert [(f.code, f.rule) for f in errors] == [("footer-hidden", 15)]


# ---- row 16: fake reply / forward subjects ------------------------------------------------------
FAKE_REPLIES = ["Re: your inquiry", "RE: your inquiry", "[Re] your inquiry", "[RE] LED panels", "(Re) prices",
                "Fw: prices", "Fwd: prices", "FW: prices", "[Fwd] prices", "AW: Angebot", "WG: Angebot",
                "TR: offre", "RV: oferta", "回复:报价", "回复：报价", "答复:报价", "转发:报价", "转发：报价",
                "【回复】报价", "[转发] 报价", "Re[2]: prices", "[Newsletter] Re: prices", "  re : prices"]


@pytest.mark.parametrize("subject", FAKE_REPLIES)
def test_a_fake_reply_or_forward_subject_blocks(subject) -> None:
    [finding] = found(lint_templates(subject=subject, html="<p>x</p>", text=""), "deceptive-subject")
    assert finding.severity == ERROR and finding.rule == 16


@pytest.mark.parametrize("subject", ["Renewal: your LED contract", "Red lamps for autumn", "Our fresh range",
                                     "Regarding the Canton Fair", "Free trial: re-imagined panels",
                                     "[Spring] new panels", "Trade fair recap", "回复率提升的秘诀"])
def test_a_subject_that_merely_contains_re_passes(subject) -> None:
    assert found(lint_templates(subject=subject, html="<p>x</p>", text=""), "deceptive-subject") == []


# ---- personalisation -----------------------------------------------------------------------------
def test_older_variable_names_warn_and_name_the_new_one() -> None:
    findings = found(lint_templates(subject="For {{ company }}", html="<p>Dear {{ first_name }}</p>", text=""),
                     "legacy-variable")
    assert [f.severity for f in findings] == [WARNING, WARNING]
    messages = " ".join(f.message for f in findings)
    assert "`company` is your own company name" in messages and "contact.company" in messages
    assert "`first_name` is an older name; write `contact.first_name`" in messages


def test_contact_and_sender_fields_are_known_and_render(content_settings) -> None:
    html = ("<p>{{ contact.first_name }} {{ contact.last_name }} at {{ contact.company }}, {{ contact.job_title }}."
            " From {{ sender.company }}, {{ sender.address }}, {{ sender.email }}, {{ sender.phone }},"
            " {{ sender.website }}</p>")
    assert lint_templates(subject="s", html=html, text="") == []
    out = render(content_settings, html=html).body_html
    assert "Anna Müller at Licht GmbH, Buyer." in out
    assert ("From Ningbo Bright Lighting Co., Ltd., 88 Jiangnan Road, Ningbo 315040, China, "
            "sales@bright-lighting.example, +86 574 8888 6666, https://bright-lighting.example") in out


def test_an_unknown_sender_field_is_an_error() -> None:
    [finding] = found(lint_templates(subject="s", html="<p>{{ sender.fax }}</p>", text=""), "unknown-variable")
    assert finding.severity == ERROR and "sender has no field 'fax'" in finding.message


def test_a_variable_empty_for_some_samples_warns_with_the_count(runtime, db_settings) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", first_name="Anna", source="Fair")
        make_contact(s, country="US", first_name="", source="Fair")
        make_contact(s, country="CN", language="zh-CN", first_name="", source="Fair")
        html = ('<p>Dear {{ contact.first_name }},</p><p>{{ contact.job_title or "Buyer" }}</p>'
                '{% if contact.company %}<p>{{ contact.company }}</p>{% endif %}')
        campaign_id = _campaign(s, db_settings, html=html)
    with transaction(runtime.factory) as s:
        report = lint_campaign(s, settings=db_settings, campaign_id=campaign_id)
    [finding] = found(report.findings, "empty-variable")
    assert finding.severity == WARNING and finding.params == {"name": "contact.first_name", "n": 2, "total": 3}
    assert 'contact.first_name or "there"' in finding.message and report.ok


def test_contact_and_sender_variables_reach_the_real_mail(runtime, db_settings, smtp_server) -> None:
    runtime.replace_settings(db_settings.replace(smtp_url=smtp_server.url))
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", first_name="Anna", company="Licht GmbH", email="anna@licht.example")
        campaign = create_campaign(
            s, settings=runtime.settings, name="n", subject="LED panels for {{ contact.company }}",
            html="<p>Dear {{ contact.first_name }}, from {{ sender.company }}, {{ sender.address }}.</p>")
        assert_sendable(s, settings=runtime.settings, campaign_id=campaign.id)
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign)
        campaign_id = campaign.id
    assert run_once(runtime, campaign_id)["states"]["sent"] == 1
    msg = parse_strict(smtp_server.messages[0].data)
    assert msg["Subject"] == "LED panels for Licht GmbH"
    assert "Dear Anna, from Ningbo Bright Lighting Co., Ltd., 88 Jiangnan Road, Ningbo 315040, China." in msg.get_body(
        ("plain",)).get_content()


# ---- transactional label: warnings, and an admin's confirmation ------------------------------
PROMO = "<p>Our new products: 20% discount on LED panels, only $12 each. Order now!</p>"


def test_promotion_labelled_transactional_warns_and_waits_for_an_admin(runtime, db_settings) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", source="Fair")
        create_user(s, email="boss@bright-lighting.example", password="lantern-festival-2026", role="admin")
        campaign_id = _campaign(s, db_settings, html=PROMO, kind="transactional")
    with transaction(runtime.factory) as s:
        report = lint_campaign(s, settings=db_settings, campaign_id=campaign_id)
        [promo] = found(report.findings, "transactional-promotional")
        assert promo.severity == WARNING and {"discount", "new product", "price"} <= set(promo.params["words"].split(", "))
        assert found(report.findings, "transactional-segment")
        assert [f.code for f in report.errors] == ["transactional-unconfirmed"]
        with pytest.raises(ComplianceError):
            assert_sendable(s, settings=db_settings, campaign_id=campaign_id)
        with pytest.raises(CampaignError, match="only an admin"):
            confirm_transactional(s, campaign_id=campaign_id, email="m@bright-lighting.example", role="marketer")
        confirm_transactional(s, campaign_id=campaign_id, email="boss@bright-lighting.example", role="admin")
    with transaction(runtime.factory) as s:
        report = assert_sendable(s, settings=db_settings, campaign_id=campaign_id)
        assert found(report.findings, "transactional-promotional")  # still said, no longer blocking
        update_campaign(s, settings=db_settings, campaign_id=campaign_id, name="c", subject="Changed",
                        html=PROMO, kind="transactional")
    with transaction(runtime.factory) as s:  # other content: confirmed again or not sent
        assert [f.code for f in lint_campaign(s, settings=db_settings, campaign_id=campaign_id).errors] == [
            "transactional-unconfirmed"]


def test_saving_the_same_content_from_a_browser_keeps_the_confirmation(runtime, db_settings) -> None:
    html = "<p>Your order 1042</p>\n<p>has shipped.</p>"
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", source="Fair")
        campaign_id = _campaign(s, db_settings, html=html, kind="transactional")
        confirm_transactional(s, campaign_id=campaign_id, email="boss@bright-lighting.example", role="admin")
    with transaction(runtime.factory) as s:  # a form posts CRLF line ends
        update_campaign(s, settings=db_settings, campaign_id=campaign_id, name="renamed", subject="New panels",
                        html=html.replace("\n", "\r\n"), kind="transactional")
    with transaction(runtime.factory) as s:
        assert lint_campaign(s, settings=db_settings, campaign_id=campaign_id).ok


def test_marketing_campaigns_need_no_confirmation(runtime, db_settings) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", source="Fair")
        campaign_id = _campaign(s, db_settings, html=PROMO)
        with pytest.raises(CampaignError, match="not transactional"):
            confirm_transactional(s, campaign_id=campaign_id, email="boss@bright-lighting.example", role="admin")
    with transaction(runtime.factory) as s:
        report = lint_campaign(s, settings=db_settings, campaign_id=campaign_id)
    assert not [f for f in report.findings if f.code.startswith("transactional")]


def test_the_cli_confirms_only_for_an_admin_user(runtime, db_settings, db_url, tmp_path) -> None:
    with transaction(runtime.factory) as s:
        create_user(s, email="boss@bright-lighting.example", password="lantern-festival-2026", role="admin")
        create_user(s, email="mia@bright-lighting.example", password="lantern-festival-2026", role="marketer")
        campaign_id = _campaign(s, db_settings, html="<p>Your order 1042 has shipped.</p>", kind="transactional")
    env = {"SENDWELL_DATA_DIR": str(db_settings.data_dir), "SENDWELL_DATABASE_URL": db_url,
           "SENDWELL_SECRET_KEY": db_settings.secret_key, "SENDWELL_HASH_PEPPER": db_settings.hash_pepper}
    runner = CliRunner()
    args = ["campaigns", "confirm-transactional", str(campaign_id)]
    refused = runner.invoke(cli, [*args, "--admin", "mia@bright-lighting.example"], env=env)
    assert refused.exit_code == 1 and "only an admin" in refused.output
    unknown = runner.invoke(cli, [*args, "--admin", "nobody@bright-lighting.example"], env=env)
    assert unknown.exit_code == 1 and "no active admin user" in unknown.output
    done = runner.invoke(cli, [*args, "--admin", "boss@bright-lighting.example", "--json"], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["confirmed_by"] == "boss@bright-lighting.example"
    with transaction(runtime.factory) as s:
        assert lint_campaign(s, settings=db_settings, campaign_id=campaign_id).ok


# ---- helpers ---------------------------------------------------------------------------------------
@pytest.fixture
def db_settings(runtime, dkim_key_file):
    runtime.replace_settings(runtime.settings.replace(
        dkim_domain="bright-lighting.example", dkim_key_file=str(dkim_key_file), contact_phone="+86 574 8888 6666",
        privacy_url="https://bright-lighting.example/privacy"))
    return runtime.settings


def _campaign(session, settings, html="<p>Dear {{ contact.first_name }}</p>", segment="", kind="marketing") -> int:
    return create_campaign(session, settings=settings, name="c", subject="New panels", html=html, segment=segment,
                           kind=kind).id

