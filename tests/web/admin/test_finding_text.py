"""A lint finding on the admin reads in the reader's language, with the codes it names shown as code."""

from __future__ import annotations

from jinja2 import Environment, UndefinedError

from sendwell.content.lint import render_failure
from sendwell.content.render import TemplateError
from sendwell.db.models import Campaign
from sendwell.db.session import transaction
from sendwell.web.admin.localized import finding_text
from sendwell.web.admin.pages import gettext_for
from tests.helpers import make_contact


def shown(finding: dict, language: str = "zh_Hans") -> str:
    env = Environment(autoescape=True)
    env.filters["finding_text"] = finding_text
    return env.from_string("{{ f|finding_text }}").render(f=finding, _=gettext_for(language), lang=language)


def test_a_findings_codes_are_code_its_part_a_word_and_a_law_article_is_not_translated() -> None:
    unknown = {"template": "%(part)s: unknown template variable %(name)r", "params": {"part": "html", "name": "frist<b>"}}
    assert shown(unknown) == "HTML 源码：未知的模板变量 <code>frist&lt;b&gt;</code>"
    assert shown(unknown, "en") == "HTML: unknown template variable <code>frist&lt;b&gt;</code>"
    privacy = {"template": "SENDWELL_PRIVACY_URL is empty: EU/UK mails say the notice is available on request "
                           "(GDPR Art 13/14 expect a link)", "params": {}}
    assert shown(privacy).startswith("<code>SENDWELL_PRIVACY_URL</code> 为空")
    source = {"template": "%(n)s EU/UK contact(s) in the segment have no recorded source; their data notice cannot "
                          "say where the data came from (GDPR Art 14(2)(f))", "params": {"n": 3}}
    assert 'GDPR 第 <span translate="no">14(2)(f)</span> 条' in shown(source)
    legacy = {"template": "%(part)s: line %(line)s: `%(name)s` is an older name; write `%(new)s`",
              "params": {"part": "subject", "line": 1, "name": "first_name", "new": "contact.first_name"}}
    assert shown(legacy) == "主题：第 1 行：<code>first_name</code> 是旧写法；请写 <code>contact.first_name</code>"
    # A value that is not a code is the user's text, escaped.
    assert shown({"template": "%(error)s", "params": {"error": "<script>"}}) == "&lt;script&gt;"


def test_a_dry_render_of_an_undefined_variable_is_a_template_with_the_name() -> None:
    try:
        raise TemplateError("cannot render for contact 3: 'frist_name' is undefined") from UndefinedError(
            "'frist_name' is undefined")
    except TemplateError as exc:
        finding = render_failure(exc)
    assert finding.message == "dry render: 'frist_name' is undefined"
    assert shown(finding.as_dict()) == "试渲染：变量 <code>frist_name</code> 未定义"


def test_the_preview_and_the_click_map_name_the_variable_and_the_sample_in_chinese(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="CN", language="de")
        campaign = Campaign(name="Spring catalogue", subject="New panels", html="<p>Hi {{ frist_name }}</p>",
                            status="draft")
        s.add(campaign)
        s.flush()
        campaign_id = campaign.id
    client = as_role("marketer", language="zh_Hans")
    preview = client.get(f"/admin/campaigns/{campaign_id}/preview").text
    assert "试渲染：变量 <code>frist_name</code> 未定义" in preview and "is undefined" not in preview
    links = client.get(f"/admin/campaigns/{campaign_id}/links").text
    assert "试渲染：变量 <code>frist_name</code> 未定义" in links and "cannot render" not in links
    assert '链接与点击分布图: <span translate="no">Spring catalogue</span>' in links
