"""Saved templates, the built-in starters, and the brand layout in a real sent mail (footer last)."""

from __future__ import annotations

import pytest

from sendwell.campaigns.service import create_campaign
from sendwell.content.brand import BrandError, load_brand, logo, save_layout
from sendwell.content.lint import lint_rendered, lint_templates
from sendwell.content.templates import (
    MailTemplateError,
    create_template,
    delete_template,
    get_template,
    list_templates,
    starters,
    update_template,
)
from sendwell.db.models import Campaign
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from tests.content.conftest import LINKS, render
from tests.helpers import make_contact, parse_strict, run_once

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def test_templates_are_created_listed_changed_and_deleted(session) -> None:
    first = create_template(session, name=" Fair ", subject="Hello", html="<p>Hi</p>", by="ann@example.com")
    second = create_template(session, name="News", html="<p>News</p>", by="bo@example.com")
    assert first.name == "Fair" and first.created_by == first.updated_by == "ann@example.com"
    assert {t.id for t in list_templates(session)} == {first.id, second.id}
    update_template(session, template_id=first.id, name="Fair 2026", subject="Hi", html="<p>New</p>",
                    by="bo@example.com")
    changed = get_template(session, template_id=first.id)
    assert (changed.name, changed.subject, changed.html, changed.created_by, changed.updated_by) == (
        "Fair 2026", "Hi", "<p>New</p>", "ann@example.com", "bo@example.com")
    delete_template(session, template_id=second.id)
    assert [t.id for t in list_templates(session)] == [first.id]
    with pytest.raises(MailTemplateError, match="needs a name"):
        create_template(session, name=" ", html="<p>x</p>")
    with pytest.raises(MailTemplateError, match="no template"):
        get_template(session, template_id=second.id)


def test_the_starters_pass_the_compliance_lint(content_settings) -> None:
    found = starters()
    assert {s.slug for s in found} == {"announcement", "fair_follow_up", "newsletter"}
    for s in found:
        assert s.name and s.subject and "<!--" not in s.html
        assert [f for f in lint_templates(subject=s.subject, html=s.html, text="") if f.severity == "error"] == []
        rendered = render(content_settings, html=s.html, subject=s.subject)
        assert [f for f in lint_rendered(rendered, LINKS) if f.severity == "error"] == []


def test_the_logo_must_be_a_small_png_jpeg_or_gif(session) -> None:
    with pytest.raises(BrandError, match="only PNG, JPEG and GIF"):
        save_layout(session, colour="", background="", header_html="", footer_html="", logo=b"<svg></svg>")
    with pytest.raises(BrandError, match="limit is 200 KB"):
        save_layout(session, colour="", background="", header_html="", footer_html="",
                    logo=PNG + b"\0" * 210_000)
    with pytest.raises(BrandError, match="not a colour"):
        save_layout(session, colour="red", background="", header_html="", footer_html="")
    layout = save_layout(session, colour="#1A5FB4", background="", header_html="", footer_html="", logo=PNG)
    assert (layout.logo_type, layout.colour) == ("image/png", "#1a5fb4")
    assert logo(session) == (PNG, "image/png", layout.logo_version)
    brand = load_brand(session, base_url="https://mail.example/")
    assert brand is not None and brand.logo_url == f"https://mail.example/brand/logo/{layout.logo_version}"
    save_layout(session, colour="", background="", header_html="", footer_html="", remove_logo=True)
    assert logo(session) is None and load_brand(session, base_url="https://mail.example") is None


def test_a_sent_mail_has_the_brand_around_the_content_and_the_compliance_footer_last(runtime) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", first_name="Anna")
        save_layout(s, colour="#1a5fb4", background="#f4f6fa", header_html="<p>BRAND-HEADER</p>",
                    footer_html="<p>BRAND-FOOTER</p>", logo=PNG)
        campaign = create_campaign(s, settings=runtime.settings, name="Spring", subject="Spring panels",
                                   html="<p>CONTENT for {{ contact.first_name }}</p>", segment="region = eu")
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign)
        campaign_id = campaign.id
    assert run_once(runtime, campaign_id)["status"] == "finished"
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "finished"
    [sent] = list(runtime.settings.capture_dir.rglob("*.eml"))
    html = parse_strict(sent.read_bytes()).get_body(("html",)).get_content()
    logo_at = html.index("https://mail.bright-lighting.example/brand/logo/")
    positions = [html.index(marker) for marker in ("BRAND-HEADER", "CONTENT for Anna", "BRAND-FOOTER",
                                                   "88 Jiangnan Road")]
    assert logo_at < positions[0] and positions == sorted(positions)  # the compliance footer comes last
    assert "border-bottom:3px solid #1a5fb4" in html
    assert 'alt="Ningbo Bright Lighting Co., Ltd."' in html  # the logo says whose it is (and the lint is content)
