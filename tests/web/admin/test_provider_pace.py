"""The campaign page shows each slowed provider group's pace and the mails waiting for a group's limit."""

from __future__ import annotations

from sqlalchemy import update

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from tests.helpers import make_contact


def test_the_campaign_page_shows_the_provider_pace(runtime, as_role) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, email="a@163.com")
        make_contact(s, email="b@163.com")
        c = create_campaign(s, settings=runtime.settings, name="T", subject="s", html="<p>x</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        s.flush()
        s.execute(update(Send).where(Send.campaign_id == c.id).values(state="deferred", skip_reason="throttled"))
        campaign_id = c.id
    client = as_role("viewer")
    page = client.get(f"/admin/campaigns/{campaign_id}").text
    assert "All provider groups at full pace." in page and "Waiting for their provider&#39;s limit: 2" in page
    runtime.throttle.store.slow_down("group:netease")
    page = client.get(f"/admin/campaigns/{campaign_id}").text
    assert '<tr data-group="netease"><td>netease</td><td>5/s;conn=5</td><td>2.5/s (50%)</td><td>1</td></tr>' in page
    chinese = as_role("marketer", language="zh_Hans").get(f"/admin/campaigns/{campaign_id}").text
    assert "服务商发送速度" in chinese and "等待收件服务商的限额: 2" in chinese
