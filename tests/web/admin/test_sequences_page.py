"""The Sequences pages: list with per-step summary, create from pasted YAML, the report and alerts, why people
left each step and the step advice, pause and resume, a paused step's resume, the dry run, the edit form, CSRF
and roles, and the Chinese pages."""

from __future__ import annotations

import dataclasses
import html
import re

import httpx
import pytest
import yaml
from sqlalchemy import select

from sendwell.db.models import Alert, Campaign, Event
from sendwell.db.session import transaction
from sendwell.insight.alerts import Thresholds, check_campaign
from sendwell.optout.service import unsubscribe_contact
from sendwell.sequences.service import advance, create_sequence
from tests.helpers import make_contact, run_once
from tests.insight.test_sequence_steps import _leave
from tests.web.admin.conftest import PASSWORD, page_csrf
from tests.web.admin.test_axe import axe_violations, serve_axe
from tests.web.admin.test_browser import SHOTS, chromium, site  # noqa: F401 (fixtures)
from tests.web.admin.test_zh_complete import page_runs
from tests.web.api.test_sequences_api import left_at_two_steps

FAIR = """\
name: Canton Fair follow-up
trigger:
  kind: tag_added
  tag: fair-2026
steps:
  - id: thanks
    kind: mail
    subject: Thank you for visiting us, {{ first_name }}
    html: <p>Dear {{ first_name }}, thank you for visiting our stand.</p>
  - id: wait-3d
    kind: wait
    days: 3
exit:
  replied: true
"""


def create(client) -> str:
    made = client.post("/admin/sequences", data={"csrf_token": page_csrf(client, "/admin/sequences/new"),
                                                 "definition": FAIR}, follow_redirects=False)
    assert made.status_code == 303, made.text
    return made.headers["location"].split("?")[0]


def test_create_from_yaml_then_list_and_report(as_role, runtime) -> None:
    client = as_role("marketer")
    assert "No sequences yet." in client.get("/admin/sequences").text
    path = create(client)
    page = client.get(path + "?created=1").text
    assert "The sequence is created." in page and "Canton Fair follow-up" in page
    assert 'Tag added · tag <span translate="no">fair-2026</span>' in page
    assert "<th scope=\"col\">Unsubscribed</th>" in page and "tag: fair-2026" in page  # report table, definition
    assert "Nobody who left this sequence has answered the survey yet." in page and "No advice for now" in page
    with transaction(runtime.factory) as s:
        make_contact(s, tags=["fair-2026"])
        advance(s, settings=runtime.settings)
    listed = client.get("/admin/sequences").text
    assert f'href="{path}"' in listed and "0 sent" in listed
    assert ">1</td>" in listed  # enrolled


def left_section(page: str) -> str:
    return page.split('aria-labelledby="left-h"')[1].split("</section>")[0]


def test_why_people_left_each_step_and_the_step_advice(as_role, runtime, smtp_server) -> None:
    client = as_role("viewer")
    path = f"/admin/sequences/{left_at_two_steps(runtime, smtp_server, client)}"
    left = left_section(client.get(path).text)
    assert "Why people left, per step" in left
    # The reasons given, in the survey's order, as columns; the mail steps in order as rows.
    assert ('<th scope="col">Not relevant</th><th scope="col">Too many emails</th>'
            '<th scope="col">My situation changed</th><th scope="col">All answers</th>') in left
    assert '<th scope="row" translate="no">thanks</th><td>1</td><td>3</td><td>0</td><td>4</td>' in left
    assert '<th scope="row" translate="no">catalogue</th><td>0</td><td>0</td><td>1</td><td>1</td>' in left
    # "thanks" is the first mail: nothing of the sequence comes before it, the person's other mails do.
    assert ("<li><strong>Leave more time before step “thanks”</strong> — 3 of 3 people who left this sequence "
            "because of too many emails left at its first mail, step “thanks”: they get your other mails too. "
            "Start the sequence with a wait, or lower the frequency cap of their stage.</li>") in left
    assert "No advice for now" not in left and "Nobody who left" not in left

    chinese = left_section(as_role("marketer", language="zh_Hans").get(path).text)
    assert "各步骤的退订原因" in chinese and '<th scope="col">邮件太多</th>' in chinese
    assert ("<strong>在步骤“thanks”之前留出更多时间</strong> — 因邮件太多而退出此序列的 3 人中，有 3 人在第一封邮件"
            "（步骤“thanks”）就退订了：他们还会收到您的其他邮件。请让序列以等待步骤开始，或降低其阶段的发送频率上限。") in chinese
    assert page_runs(chinese) == {"thanks"}  # the step's id is the operator's own word


def test_a_bad_definition_names_the_field_and_keeps_the_text(as_role) -> None:
    client = as_role("marketer")
    csrf = page_csrf(client, "/admin/sequences/new")
    text = FAIR.replace("  tag: fair-2026\n", "")
    bad = client.post("/admin/sequences", data={"csrf_token": csrf, "definition": text})
    assert bad.status_code == 400
    assert "The definition cannot be used:" in bad.text and "trigger.tag: required for tag_added" in bad.text
    assert "Canton Fair follow-up" in bad.text  # the text box keeps what was typed
    broken = client.post("/admin/sequences", data={"csrf_token": csrf, "definition": "name: [unclosed"})
    assert broken.status_code == 400 and "not valid YAML or JSON" in broken.text


def test_pause_resume_need_csrf_and_a_marketer(as_role) -> None:
    client = as_role("marketer")
    path = create(client)
    assert client.post(path + "/status", data={"status": "paused"}).status_code == 403  # no CSRF token
    paused = client.post(path + "/status", data={"csrf_token": page_csrf(client, path), "status": "paused"},
                         follow_redirects=False)
    assert paused.status_code == 303
    page = client.get(paused.headers["location"]).text
    assert "Paused: nobody enters" in page and "Resume sequence" in page
    resumed = client.post(path + "/status", data={"csrf_token": page_csrf(client, path), "status": "active"},
                          follow_redirects=True)
    assert "Resumed." in resumed.text and "Pause sequence" in resumed.text
    viewer = as_role("viewer")
    assert "Pause sequence" not in viewer.get(path).text and "New sequence" not in viewer.get("/admin/sequences").text
    assert viewer.post(path + "/status", data={"csrf_token": page_csrf(viewer, path), "status": "paused"}
                       ).status_code == 403


def test_a_paused_step_shows_its_alert_and_resumes(as_role, runtime) -> None:
    client = as_role("marketer")
    path = create(client)
    with transaction(runtime.factory) as s:
        campaign = s.scalar(select(Campaign).where(Campaign.name == "Canton Fair follow-up · thanks"))
        campaign.status = "paused"
        s.add(Alert(kind="unsubscribe_spike", severity="critical", campaign_id=campaign.id,
                    message="unsubscribe rate 3.10% is over the critical threshold 2.00%"))
        campaign_id = campaign.id
    page = client.get(path).text
    assert "Step alerts" in page and "unsubscribe rate 3.10%" in page and "Resume step" in page
    listed = client.get("/admin/sequences").text
    assert '<span class="status" translate="no">thanks</span>' in listed  # among the paused steps
    resumed = client.post(path + "/steps/thanks/resume", data={"csrf_token": page_csrf(client, path)},
                          follow_redirects=True)
    assert "The step thanks sends again." in resumed.text and "Resume step" not in resumed.text
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "sending"
        assert s.scalar(select(Alert.resolved_at)) is not None


def test_the_dry_run_lists_who_would_enter(as_role, runtime) -> None:
    client = as_role("viewer")
    path = create(as_role("marketer"))
    with transaction(runtime.factory) as s:
        make_contact(s, email="anna@licht.example", tags=["fair-2026"])
        make_contact(s, email="other@licht.example")
    page = client.get(path + "/dry-run").text
    assert "1 contacts would enter now." in page and "anna@licht.example" in page
    assert "other@licht.example" not in page
    assert client.get("/admin/sequences/999/dry-run").status_code == 404


def test_the_edit_form_shows_the_definition_and_names_a_bad_field(as_role) -> None:
    client = as_role("marketer")
    path = create(client)
    page = client.get(path + "/edit").text
    assert "Saving makes version 2." in page and "name: Canton Fair follow-up" in page
    bad = client.post(path + "/edit", data={"csrf_token": page_csrf(client, path + "/edit"),
                                            "definition": FAIR.replace("days: 3", "days: -1")})
    assert bad.status_code == 400 and "a wait needs days, hours or minutes" in bad.text
    saved = client.post(path + "/edit", data={"csrf_token": page_csrf(client, path + "/edit"),
                                              "definition": FAIR.replace("days: 3", "days: 5")},
                        follow_redirects=True)
    assert "Saved as a new version." in saved.text and "days: 5" in saved.text
    assert "<dt>Version</dt><dd>2</dd>" in saved.text
    assert client.get("/admin/sequences/999/edit").status_code == 404
    assert client.post("/admin/sequences/999/status", data={"csrf_token": page_csrf(client, path)}).status_code == 404


def test_start_from_a_ready_made_sequence(as_role) -> None:
    templates = pytest.importorskip("sendwell.sequences.templates")
    client = as_role("marketer")
    names = [t["name"] for t in templates.list_templates()]
    assert names and all(f'value="{n}"' in client.get("/admin/sequences/new").text for n in names)
    chosen = client.get("/admin/sequences/new?template=trade-fair").text
    assert "<h2>Trade-fair follow-up</h2>" in chosen and "Thanks the buyers you met at your stand" in chosen
    assert 'Catalogue link <span class="muted">(required)</span></label>' in chosen
    assert "Where the catalogue link in the second mail goes" in chosen and "<code>catalogue_url</code>" not in chosen
    assert "Fill in the values first: Catalogue link (this template needs a value for it)" in chosen
    filled = client.get("/admin/sequences/new", params={
        "template": "trade-fair", "value.catalogue_url": "https://bright-lighting.example/catalogue",
        "value.fair": "the Canton Fair"}).text
    assert "Fill in the values first:" not in filled and "at the Canton Fair" in filled
    text = filled.split('name="definition"')[1].split(">", 1)[1].split("</textarea>")[0]
    made = client.post("/admin/sequences", data={"csrf_token": page_csrf(client, "/admin/sequences/new"),
                                                 "definition": html.unescape(text)}, follow_redirects=False)
    assert made.status_code == 303, made.text


LABELS = {"customer-onboarding": ["序列名称", "结束时添加的标签"], "re-permission": ["何时征求", "确认页面"],
          "signup-welcome": ["注册表单"], "trade-fair": ["所见买家的标签", "邮件中的展会名称", "产品目录链接"]}


@pytest.mark.parametrize("name", sorted(LABELS))
def test_a_ready_made_sequence_reads_in_chinese(as_role, name: str) -> None:
    client = as_role("marketer", language="zh_Hans")
    page = client.get("/admin/sequences/new", params={"template": name, "value.days": "soon"}).text
    card = page.split(f'<input type="hidden" name="template" value="{name}">')[1].split("</form>")[0]
    assert page_runs(card) == set(), card  # title, description, labels, help and the refusal all in Chinese
    assert all(f"{label}</label>" in card or f"{label} <span" in card for label in LABELS[name])
    raw_key = re.compile(r">\s*(name|tag|fair|catalogue_url|confirm_url|days|form_id)\s*<")
    assert "<code>" not in card and not raw_key.search(card)  # no value labelled by its key
    picker = page.split('<select id="template"')[1].split("</select>")[0]
    assert "展会跟进" in picker and "新客户引导" in picker and page_runs(picker) == set()
    if name == "trade-fair":
        assert "<h2>展会跟进</h2>" in card and "三天后发送产品目录" in card
        assert '产品目录链接 <span class="muted">(必填)</span></label>' in card
        assert "请先填写以下值： 产品目录链接 (此模板需要填写这一项)</p>" in card
    if name == "re-permission":
        assert "何时征求 (需为整数，例如 -30)；确认页面 (此模板需要填写这一项)</p>" in card


def test_a_date_trigger_reads_in_words(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        create_sequence(s, settings=runtime.settings, data={
            "name": "Re-permission", "trigger": {"kind": "date", "field": "consent_expires_at", "days": -30},
            "steps": [{"id": "mark", "kind": "set", "tag": "asked"}]})
    assert "A date comes due · consent expires · 30 days before" in as_role("viewer").get("/admin/sequences").text
    assert "日期到期 · 同意到期日 · 之前 30 天" in as_role("marketer", language="zh_Hans").get("/admin/sequences").text


def test_the_pages_in_chinese(as_role) -> None:
    client = as_role("marketer", language="zh_Hans")
    path = create(client)
    listed = client.get("/admin/sequences").text
    assert "序列" in listed and "New sequence" not in listed and "No sequences yet." not in listed
    page = client.get(path).text
    assert "已退订" in page and "Pause sequence" not in page and "Step" not in page.split("<main")[1]
    assert "还没有人填写问卷" in page and "暂无建议" in page and page_runs(left_section(page)) == set()


@pytest.mark.browser
def test_the_pages_in_a_browser(chromium, site, runtime, make_user, smtp_server) -> None:  # noqa: F811
    """Screenshots (docs/screenshots/sequences-*.png) in English and Chinese, with axe-core's findings."""
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    with transaction(runtime.factory) as s:
        sequence_id = create_sequence(s, settings=runtime.settings, data=yaml.safe_load(FAIR)).id
        create_sequence(s, settings=runtime.settings, data={
            "name": "Quote requested", "trigger": {"kind": "api_event", "name": "quote_requested"},
            "steps": [{"id": "quote", "kind": "mail", "subject": "Your quote", "html": "<p>Dear {{ first_name }}</p>"}]})
        contacts = [make_contact(s, tags=["fair-2026"]) for _ in range(12)]
        ids, emails = [c.id for c in contacts], [c.email for c in contacts]
    with transaction(runtime.factory) as s:
        report = advance(s, settings=runtime.settings)
    for campaign_id in {c for c, _ in report["batches"]}:
        run_once(runtime, campaign_id)
    with httpx.Client(base_url=site) as web:  # leave through the mail's link and answer the survey
        for email, reason in zip(emails[5:9], ("too_many", "too_many", "too_many", "not_relevant"), strict=True):
            _leave(web, smtp_server, email, "Thank you for visiting", reason)
    with transaction(runtime.factory) as s:
        step = s.scalar(select(Campaign.id).where(Campaign.name == "Canton Fair follow-up · thanks"))
        for contact_id in ids[:5]:
            s.add(Event(kind="opened", contact_id=contact_id, campaign_id=step))
        for contact_id in ids[:3]:
            s.add(Event(kind="clicked", contact_id=contact_id, campaign_id=step))
        unsubscribe_contact(s, contact_id=ids[-1], method="one_click", campaign_id=step)
        thresholds = dataclasses.replace(Thresholds.from_settings(runtime.settings), min_sample=1)
        assert check_campaign(s, campaign_id=step, thresholds=thresholds)[0].severity == "critical"
    context = chromium.new_context(base_url=site, viewport={"width": 1280, "height": 900}, locale="en-GB")
    serve_axe(context)
    tab = context.new_page()
    tab.set_default_timeout(15000)
    violations: list[str] = []

    def shoot(name: str) -> None:
        violations.extend(axe_violations(tab))
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    for language, suffix in (("en", ""), ("zh_Hans", "-zh_Hans")):
        email = make_user("marketer", email=f"m-{language}@bright-lighting.example", language=language)
        context.clear_cookies()
        tab.goto("/admin/login")
        tab.locator("input[name=email]").fill(email)
        tab.locator("input[name=password]").fill(PASSWORD)
        tab.locator("form button[type=submit]").click()
        tab.wait_for_url("**/admin/dashboard")
        tab.goto("/admin/sequences")
        shoot(f"sequences{suffix}")
        tab.goto(f"/admin/sequences/{sequence_id}")
        tab.locator("#steps-h").wait_for()
        shoot(f"sequences-detail{suffix}")
        tab.goto("/admin/sequences/new?template=trade-fair&value.fair=the+Canton+Fair"
                 "&value.catalogue_url=https://bright-lighting.example/catalogue")
        shoot(f"sequences-new{suffix}")
    tab.goto(f"/admin/sequences/{sequence_id}")
    tab.get_by_role("button", name="恢复步骤").click()
    tab.get_by_text("步骤 thanks 已恢复发送。").wait_for()
    context.close()
    assert violations == [], "\n".join(violations)
