"""A provider group's pace and its throttled mails are visible: `campaigns status` and /metrics."""

from __future__ import annotations

import json
import warnings

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from sendwell.access.service import create_token
from sendwell.campaigns.service import create_campaign
from sendwell.cli.campaigns import _status_out
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.web.app import create_app
from tests.helpers import make_contact

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _sending_campaign(runtime) -> int:
    with transaction(runtime.factory) as s:
        make_contact(s, email="a@yahoo.com")
        make_contact(s, email="b@gmail.com")
        c = create_campaign(s, settings=runtime.settings, name="T", subject="s", html="<p>x</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        s.flush()
        # One mail waits for its group's limit (what Deliverer.deliver does when a group is full).
        first = s.scalar(select(func.min(Send.id)).where(Send.campaign_id == c.id))
        s.execute(update(Send).where(Send.id == first).values(state="deferred", skip_reason="throttled"))
        return c.id


def test_campaigns_status_shows_slowed_groups(runtime, capsys) -> None:
    campaign_id = _sending_campaign(runtime)
    _status_out(runtime, campaign_id, as_json=False)
    assert "provider pace" not in capsys.readouterr().out  # every group at full pace: no line
    runtime.throttle.store.slow_down("group:yahoo")
    _status_out(runtime, campaign_id, as_json=False)
    out = capsys.readouterr().out
    assert "waiting: throttled 1" in out
    assert "provider pace: yahoo 5/s (50% of 10/s;conn=10, 1 slow-downs)" in out
    _status_out(runtime, campaign_id, as_json=True)
    paces = {p["group"]: p for p in json.loads(capsys.readouterr().out)["provider_pace"]}
    assert paces["yahoo"]["factor"] == 0.5 and paces["google"]["factor"] == 1.0


def test_metrics_report_each_groups_pace_and_the_throttled_mails(runtime) -> None:
    _sending_campaign(runtime)
    runtime.throttle.store.slow_down("group:qq")
    with transaction(runtime.factory) as session:
        headers = {"Authorization": f"Bearer {create_token(session, name='p', scopes=['metrics:read']).secret}"}
    text = TestClient(create_app(runtime)).get("/metrics", headers=headers).text
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in text_string_to_metric_families(text) for s in family.samples}
    assert got[("sendwell_provider_pace_ratio", (("group", "qq"),))] == 0.5
    assert got[("sendwell_provider_rate", (("group", "qq"),))] == 2.5
    assert got[("sendwell_provider_slowdowns_total", (("group", "qq"),))] == 1
    assert got[("sendwell_provider_pace_ratio", (("group", "google"),))] == 1.0
    assert got[("sendwell_sends_deferred", (("reason", "throttled"),))] == 1
