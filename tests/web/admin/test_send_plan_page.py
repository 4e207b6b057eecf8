"""The admin's send confirmation: Send and Schedule show the plan; only the confirm POST sends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Campaign, Send, Suppression
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.web.admin.conftest import page_csrf

HTML = "<p>Dear {{ first_name }}, our new LED panels.</p>"


def _campaign(runtime, segment: str = "") -> int:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", language="de")
        make_contact(s, country="US", language="en")
        complainer = make_contact(s, country="FR", language="fr")
        s.add(Suppression(email_hash=complainer.email_hash, reason="complaint"))
        make_contact(s, country="DE", consent=None)
        return create_campaign(s, settings=runtime.settings, name="Spring LED panels", subject="New panels",
                               html=HTML, segment=segment).id


def _sends(runtime) -> int:
    with transaction(runtime.factory) as s:
        return s.query(Send).count()


def test_send_shows_the_plan_and_only_the_confirm_post_sends(as_role, runtime) -> None:
    client = as_role("marketer")
    campaign_id = _campaign(runtime)
    page = client.get(f"/admin/campaigns/{campaign_id}")
    assert f'action="/admin/campaigns/{campaign_id}/send-plan"' in page.text  # Send opens the plan, no POST

    plan = client.get(f"/admin/campaigns/{campaign_id}/send-plan")
    assert plan.status_code == 200
    assert "Would send to 2 of the segment&#39;s 4 contacts." in plan.text
    assert '<tr data-reason="complained"><td>Complained (spam report)</td><td>1</td>' in plan.text
    assert '<tr data-reason="no_consent"><td>No lawful basis</td><td>1</td>' in plan.text
    assert '<tr data-region="eu"><td>EU and EEA</td><td>1</td>' in plan.text
    assert '<tr data-language="de"><td translate="no">Deutsch</td><td>1</td>' in plan.text
    assert 'id="confirm-send">Send to 2 people</button>' in plan.text
    assert f'action="/admin/campaigns/{campaign_id}/send"' in plan.text and 'name="csrf_token"' in plan.text
    assert _sends(runtime) == 0  # looking changed nothing

    refused = client.post(f"/admin/campaigns/{campaign_id}/send", data={})  # the confirm POST needs its token
    assert refused.status_code == 403 and _sends(runtime) == 0
    sent = client.post(f"/admin/campaigns/{campaign_id}/send", data={"csrf_token": page_csrf(client)})
    assert sent.status_code == 303 and sent.headers["location"].endswith("?sent=1")
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "sending"
    shown = client.get(f"/admin/campaigns/{campaign_id}").text
    assert '<span data-reason="complained">Complained (spam report) 1</span>' in shown


def test_the_plan_in_chinese_labels_the_reasons(as_role, runtime) -> None:
    client = as_role("marketer", language="zh_Hans")
    plan = client.get(f"/admin/campaigns/{_campaign(runtime)}/send-plan").text
    assert "发送给 2 人" in plan and "没有合法依据" in plan and "投诉（垃圾邮件举报）" in plan


def test_schedule_shows_the_estimate_then_schedules(as_role, runtime) -> None:
    client = as_role("marketer")
    campaign_id = _campaign(runtime)
    at = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT09:30")
    plan = client.get(f"/admin/campaigns/{campaign_id}/send-plan", params={"at": at, "tz": "Asia/Shanghai"})
    assert plan.status_code == 200 and "Schedule for 2 people" in plan.text
    assert f'name="at" value="{at}"' in plan.text and 'name="tz" value="Asia/Shanghai"' in plan.text
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "draft"
    done = client.post(f"/admin/campaigns/{campaign_id}/schedule",
                       data={"at": at, "tz": "Asia/Shanghai", "csrf_token": page_csrf(client)})
    assert done.status_code == 303
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).status == "scheduled"


def test_a_past_start_time_is_said_once(as_role, runtime) -> None:
    client = as_role("marketer")
    campaign_id = _campaign(runtime)
    past = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT09:30")
    answer = client.post(f"/admin/campaigns/{campaign_id}/schedule",
                         data={"at": past, "tz": "UTC", "csrf_token": page_csrf(client)})
    assert answer.status_code == 409 and answer.text.count("is not in the future") == 1
    early = client.get(f"/admin/campaigns/{campaign_id}/send-plan", params={"at": past, "tz": "UTC"})
    assert early.status_code == 400 and early.text.count("is not in the future") == 1


def test_a_send_to_nobody_finishes_and_the_page_says_so(as_role, runtime) -> None:
    client = as_role("marketer")
    campaign_id = _campaign(runtime, segment="country = FR")  # only the complainer
    plan = client.get(f"/admin/campaigns/{campaign_id}/send-plan").text
    assert 'id="plan-nobody"' in plan and "Send to 0 people" in plan
    sent = client.post(f"/admin/campaigns/{campaign_id}/send", data={"csrf_token": page_csrf(client)})
    assert sent.status_code == 303 and "sent=1" not in sent.headers["location"]
    page = client.get(f"/admin/campaigns/{campaign_id}").text
    assert 'id="campaign-status">finished<' in page or "Finished" in page
    assert "Sent to nobody: every contact in the segment was skipped" in page


def test_every_skip_and_defer_reason_reads_in_chinese() -> None:
    from sendwell.i18n import translations
    from sendwell.policy.eligibility import SKIP_LABELS

    catalog = translations("zh_Hans", "admin")
    assert [label for label in SKIP_LABELS.values() if catalog.gettext(label) == label] == []
