"""The render budget: a template cannot build a huge string, loop for ever, or send a huge mail."""

from __future__ import annotations

import tracemalloc
import warnings

import pytest

from sendwell.access.service import create_token
from sendwell.campaigns.service import create_campaign, update_campaign
from sendwell.content import budget
from sendwell.content.budget import MAX_HTML_CHARS, MAX_TEXT_CHARS
from sendwell.content.render import CompiledCampaign, TemplateError
from sendwell.content.service import lint_campaign, preview_campaign
from sendwell.db.session import transaction
from sendwell.web.app import create_app
from tests.content.conftest import LINKS, recipient, render
from tests.helpers import make_contact

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PEAK_BYTES = 8_000_000  # a refused template never gets near its 30-100 MB target
AMPLIFIERS = {
    "format width": "{{ '{:>99999999}'.format(first_name) }}",
    "format precision": "{{ '{:.99999999f}'.format(1.5) }}",
    "format map width": "{{ '{x:^99999999}'.format_map({'x': 1}) }}",
    "center method": "{{ first_name.center(10**8) }}",
    "ljust method": "{{ first_name.ljust(100000000) }}",
    "zfill method": "{{ '1'.zfill(100000000) }}",
    "center filter": "{{ first_name|center(100000000) }}",
    "indent filter": "{{ 'a\nb'|indent(100000000) }}",
    "percent width": "{{ '%100000000s' % first_name }}",
    "percent precision": "{{ '%.99999999f' % 1.5 }}",
    "format filter": "{{ '%100000000s'|format(first_name) }}",
    "tilde in a loop": "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}"
                       "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "plus in a loop": "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}"
                      "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "star repetition": "{{ first_name * 30000000 }}",
    "star of a long string": "{% set s = 'x' * 90000 %}{{ s * 90000 }}",
    "printing a repeated list": "{% set s = 'x' * 90000 %}{{ [s] * 90000 }}",
    "list doubling": "{% set ns = namespace(l=['x' * 90000]) %}{% for i in range(40) %}"
                     "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|tojson|length }}",
    "join of a repeated list": "{% set s = 'x' * 90000 %}{{ ([s] * 90000)|join }}",
    "replace blow-up": "{% set s = 'x' * 90000 %}{{ s.replace('', s) }}",
    "range loop": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "silent nested loop": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "loop output": "{% for i in range(100000) %}{{ '%9000s' % i }}{% endfor %}",
    "macro doubling": "{% macro d(n) %}{% if n %}{{ d(n - 1) }}{{ d(n - 1) }}{% else %}xxxx{% endif %}{% endmacro %}"
                      "{{ d(40) }}",
    "set block in a loop": "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set b %}{{ ns.s }}"
                           "{{ ns.s }}{% endset %}{% set ns.s = b %}{% endfor %}{{ ns.s|length }}",
}


@pytest.mark.parametrize("name", sorted(AMPLIFIERS))
def test_amplifier_is_refused_with_bounded_memory(content_settings, name) -> None:
    payload = AMPLIFIERS[name]
    for where in ("html", "text", "subject"):
        fields = {"subject": "Offer", "html": "<p>Hello</p>", "text": ""} | {where: payload}
        tracemalloc.start()
        try:
            with pytest.raises(TemplateError) as info:
                # The trial render at compile time refuses it, as create and update do.
                CompiledCampaign(settings=content_settings, **fields)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "render budget" in str(info.value), str(info.value)
        assert peak < PEAK_BYTES, (where, peak)


def test_each_render_is_checked_too(content_settings) -> None:
    # A template whose stand-in render is small but a real contact's value makes it huge.
    compiled = CompiledCampaign(subject="s", html="{{ contact.custom.n * 'x' }}", text="",
                                settings=content_settings)
    assert "xxx" in compiled.render(recipient(custom={"n": 3}), LINKS).html
    with pytest.raises(TemplateError, match="render budget"):
        compiled.render(recipient(custom={"n": MAX_HTML_CHARS + 1}), LINKS)


def test_output_limit_names_the_limit(content_settings) -> None:
    html = "{% for i in range(2000) %}" + "<p>" + "y" * 1000 + "</p>{% endfor %}"
    with pytest.raises(TemplateError) as info:
        CompiledCampaign(subject="s", html=html, text="", settings=content_settings)
    assert f"{MAX_HTML_CHARS:,}" in str(info.value)
    with pytest.raises(TemplateError, match=f"{MAX_TEXT_CHARS:,}"):
        CompiledCampaign(subject="s", html="<p>x</p>", text=html, settings=content_settings)


def test_a_large_normal_mail_still_renders(content_settings) -> None:
    html = "{% for i in range(300) %}<p>{{ first_name }}, " + "panel " * 50 + "{{ '%5d' % i }}</p>{% endfor %}"
    rendered = render(content_settings, html=html)
    assert rendered.html.count("Anna, panel") == 300
    assert render(content_settings, html="{{ '{:>6}|'.format(first_name) }}{{ first_name|center(9) }}").body_html \
        == "  Anna|   Anna  "


# ---- create, lint and preview over the database ------------------------------------------
BLOW_UP = "{{ '{:>99999999}'.format(first_name) }}"
BY_CONTACT = "<p>Hi</p>{{ 'x' * (contact.custom.n or 1) }}"  # small for the stand-in, huge for one contact


def test_create_and_update_refuse_a_template_over_budget(runtime) -> None:
    settings = runtime.settings
    with transaction(runtime.factory) as s:
        with pytest.raises(TemplateError, match="render budget of 1,000,000 characters"):
            create_campaign(s, settings=settings, name="c", subject="s", html=BLOW_UP)
        campaign = create_campaign(s, settings=settings, name="c", subject="s", html="<p>ok</p>")
        with pytest.raises(TemplateError, match="render budget"):
            update_campaign(s, settings=settings, campaign_id=campaign.id, name="c", subject=BLOW_UP,
                            html="<p>ok</p>", text="", segment="")


def test_lint_and_preview_report_a_contact_over_budget(runtime) -> None:
    settings = runtime.settings
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", language="de", source="Fair", custom={"n": MAX_HTML_CHARS + 1})
        campaign_id = create_campaign(s, settings=settings, name="c", subject="s", html=BY_CONTACT).id
    tracemalloc.start()
    try:
        with transaction(runtime.factory) as s:
            report = lint_campaign(s, settings=settings, campaign_id=campaign_id)
            previews = preview_campaign(s, settings=settings, campaign_id=campaign_id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    budget_errors = [f for f in report.errors if f.code == "render-budget"]
    assert len(budget_errors) == 1 and "1,000,000 characters" in budget_errors[0].message
    assert [p["findings"][0]["code"] for p in previews] == ["render-budget"]
    assert "html" not in previews[0]
    assert peak < PEAK_BYTES


def test_a_campaigns_write_token_cannot_store_a_template_over_budget(runtime) -> None:
    with transaction(runtime.factory) as s:
        token = create_token(s, name="marketer", scopes=["campaigns:write", "campaigns:read"]).secret
    headers = {"Authorization": f"Bearer {token}"}
    body = {"name": "Spring", "subject": "New panels", "html": BLOW_UP}
    tracemalloc.start()
    try:
        with TestClient(create_app(runtime, outbox=False)) as client:
            refused = client.post("/api/v1/campaigns", headers=headers, json=body)
            in_text = client.post("/api/v1/campaigns", headers=headers,
                                  json=body | {"html": "<p>Hi</p>", "text": "{{ 'x' * 100000000 }}"})
            created = client.post("/api/v1/campaigns", headers=headers, json=body | {"html": "<p>Hi</p>"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.status_code == 422 and "render budget of 1,000,000 characters" in refused.text, refused.text
    assert created.status_code == 201
    assert in_text.status_code == 422 and "render budget" in in_text.text, in_text.text
    assert peak < 4 * PEAK_BYTES  # the app itself allocates a few MB


def test_a_render_over_its_time_is_stopped(content_settings, monkeypatch) -> None:
    # No time in the assertion: a zero time budget makes any loop of a few hundred steps late.
    monkeypatch.setattr(budget, "MAX_RENDER_SECONDS", 0.0)
    with pytest.raises(TemplateError, match="rendered longer than the render budget of 0 s"):
        CompiledCampaign(subject="s", html="{% for i in range(1000) %}{{ i }}{% endfor %}", text="",
                         settings=content_settings)
