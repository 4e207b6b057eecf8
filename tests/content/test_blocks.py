"""Audience blocks: {% region %}, {% industry %}, {% stage %}, {% country %}, {% language %}."""

from __future__ import annotations

import pytest

from sendwell.content.render import CompiledCampaign, TemplateError
from tests.content.conftest import LINKS, recipient, render

BLOCKS = (
    '{% region "eu", "uk" %}CE and UKCA marking{% else %}UL listing{% endregion %}|'
    '{% industry "Lighting" %}for lighting importers{% endindustry %}|'
    '{% stage "customer" %}Thank you for your orders{% else %}Samples in 7 days{% endstage %}|'
    '{% country "de" %}Lieferung ab Hamburg{% endcountry %}|'
    '{% language "zh" %}中文目录{% endlanguage %}'
)


@pytest.mark.parametrize(("fields", "present", "absent"), [
    ({"region": "eu", "country": "DE", "language": "de"}, ["CE and UKCA", "Lieferung ab Hamburg"], ["UL listing"]),
    ({"region": "uk", "country": "GB"}, ["CE and UKCA"], ["Lieferung", "UL listing"]),
    ({"region": "us", "country": "US", "stage": "customer"}, ["UL listing", "Thank you"], ["CE and", "Samples"]),
    ({"industry": "furniture"}, ["Samples in 7 days"], ["for lighting importers"]),
    ({"industry": "lighting"}, ["for lighting importers"], []),
    ({"region": "other", "country": "CN", "language": "zh-CN"}, ["中文目录", "UL listing"], ["CE and"]),
])
def test_blocks_choose_by_contact(content_settings, fields, present, absent) -> None:
    body = render(content_settings, html=BLOCKS, contact=recipient(**fields)).body_html
    for text in present:
        assert text in body
    for text in absent:
        assert text not in body


@pytest.mark.parametrize(("html", "needle"), [
    ('{% region "europe" %}x{% endregion %}', "unknown region 'europe' (use one of eu, uk, us, ca, au, cn, other)"),
    ('{% stage "vip" %}x{% endstage %}', "unknown stage 'vip'"),
    ('{% country "Germany" %}x{% endcountry %}', "unknown country 'Germany'"),
    ("{% region eu %}x{% endregion %}", "takes quoted values"),
    ("{% region %}x{% endregion %}", "needs at least one value"),
    ('\n\n{% region "eu" %}x', "line 3"),
])
def test_bad_blocks_are_compile_errors_with_the_line(content_settings, html, needle) -> None:
    with pytest.raises(TemplateError, match="syntax error") as info:
        CompiledCampaign(subject="s", html=html, text="", settings=content_settings)
    assert needle in str(info.value)


def test_the_plain_if_form_still_works(content_settings) -> None:
    html = '{% if region in ("eu", "uk") %}GDPR{% elif contact.region == "us" %}FDA{% endif %}'
    assert "FDA" in render(content_settings, html=html, contact=recipient(region="us")).body_html
    compiled = CompiledCampaign(subject="s", html=html, text="", settings=content_settings)
    assert compiled.render(recipient(region="eu"), LINKS).body_html == "GDPR"
