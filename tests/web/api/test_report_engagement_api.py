"""/reports?campaign_id=…: the campaign's opens and clicks, people and machines apart, and its link report."""

from __future__ import annotations

from sendwell.db.session import transaction
from tests.insight.test_report_engagement import PANELS_URL, _seed


def test_the_campaign_report_has_opens_clicks_and_links(client, runtime, auth) -> None:
    with transaction(runtime.factory) as s:
        campaign_id = _seed(s).id
    body = client.get("/api/v1/reports", params={"campaign_id": campaign_id}, headers=auth("reports:read")).json()
    assert body["campaigns"][0]["clicked"] == 3  # the keys a report had keep their meaning
    engagement = body["engagement"]
    assert engagement["clicks"] == {"people": 3, "people_total": 4, "machines": 1, "machines_total": 1, "rate": 0.3}
    assert engagement["opens"]["machines"] == 2
    assert {r["reason"]: r["label"] for r in engagement["machine_reasons"]}["google_image_proxy"] == "Image proxy (Gmail)"
    panels = next(k for k in engagement["links"] if k["url"] == PANELS_URL)
    assert (panels["label"], panels["people"], panels["share"]) == ("our 2026 panels", 2, 0.75)
    assert any(day["delivered"] == 10 for day in body["over_time"])
    everything = client.get("/api/v1/reports", headers=auth("reports:read")).json()
    assert everything["engagement"] is None
