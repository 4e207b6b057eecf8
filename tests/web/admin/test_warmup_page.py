"""The Warm-up page: each plan's day and per-group allowance, used and remaining, in English and Chinese."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from sendwell.db.models import Campaign, Send, SendState
from sendwell.db.session import transaction
from sendwell.delivery.warmup import hold_for_warm_up, parse_schedule, start_plan
from sendwell.policy.caps import FrequencyPolicy
from tests.helpers import make_contact


def test_admin_page_shows_the_running_plan_and_what_waits(as_role, runtime) -> None:
    client = as_role("viewer")
    assert "No warm-up plan is running." in client.get("/admin/warmup").text
    now = datetime.now(timezone.utc)
    with transaction(runtime.factory) as s:
        start_plan(s, target="bright-lighting.example", schedule=parse_schedule("2,4;google=1,3"),
                   start=(now - timedelta(days=1)).date())
        campaign = Campaign(name="Winter range", subject="New panels", html="<p>Hi</p>", status="sending")
        s.add(campaign)
        s.flush()
        sends = [Send(campaign_id=campaign.id, contact_id=make_contact(s, email=f"b{n}@gmail.com").id,
                      state=SendState.SENDING.value) for n in range(5)]
        s.add_all(sends)
        s.flush()
        held = hold_for_warm_up(s, campaign=campaign, policy=FrequencyPolicy.from_json(None), now=now,
                                send_ids=[x.id for x in sends])
        s.execute(update(Send).where(Send.id.not_in(held)).values(state=SendState.SENT.value))
    assert len(held) == 2
    page = client.get("/admin/warmup").text
    assert "Sending domain bright-lighting.example" in page and "Day 2 of 2" in page
    google = page.split('data-group="google"')[1].split("</tr>")[0]
    assert "<td>3</td><td>3</td>" in google and "<td>0</td>" in google
    others = page.split('data-group="*"')[1].split("</tr>")[0]
    assert "Every other group" in others and "<td>4</td><td>0</td>" in others
    assert "2 mails wait for a later day&#39;s allowance." in page and "Winter range" in page
    chinese = as_role("marketer", language="zh_Hans").get("/admin/warmup").text
    assert "预热" in chinese and "第 2 天，共 2 天" in chinese and "今日配额" in chinese and "其他所有分组" in chinese
