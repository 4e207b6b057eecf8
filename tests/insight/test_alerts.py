"""Spike alerts from synthetic events: each fires above its threshold and stays quiet below it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sendwell.db.models import Alert, Campaign, Event, Send
from sendwell.insight.alerts import Thresholds, check_campaign, check_recent
from sendwell.insight.rates import breakdown, campaign_rates, reasons
from sendwell.insight.recommendations import recommend
from tests.helpers import make_contact

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def make_sent_campaign(session, *, delivered: int, status: str = "sending", name: str = "c",
                       finished_at=None, contact_fields=None) -> tuple[Campaign, list]:
    campaign = Campaign(name=name, subject="s", html="h", status=status, finished_at=finished_at)
    session.add(campaign)
    session.flush()
    contacts = []
    for i in range(delivered):
        fields = contact_fields(i) if contact_fields else {}
        contact = make_contact(session, consent=None, **fields)
        session.add(Send(campaign_id=campaign.id, contact_id=contact.id, state="sent", sent_at=NOW))
        contacts.append(contact)
    session.flush()
    return campaign, contacts


def add_events(session, campaign, contacts, event_kind: str, n: int, **data) -> None:
    method = data.pop("method", "one_click") if event_kind == "unsubscribed" else ""
    for contact in contacts[:n]:
        session.add(Event(kind=event_kind, contact_id=contact.id, campaign_id=campaign.id, method=method,
                          data=dict(data), occurred_at=NOW))
    session.flush()


T = Thresholds(min_sample=100)


@pytest.mark.parametrize(
    ("kind", "data", "quiet", "warn", "critical", "alert_kind"),
    [
        ("unsubscribed", {}, 2, 4, 7, "unsubscribe_spike"),  # 0.5 % warn, 1.0 % critical of 400
        ("complained", {}, 0, 1, 2, "complaint_spike"),  # 0.1 %, 0.3 % of 400 → 1 = 0.25 %, 2 = 0.5 %
        ("bounced", {"kind": "hard"}, 20, 21, 41, "hard_bounce_spike"),  # 5 %, 10 %
    ],
)
def test_each_alert_fires_above_and_stays_quiet_below(session, kind, data, quiet, warn, critical, alert_kind) -> None:
    for count, expected in ((quiet, None), (warn, "warning"), (critical, "critical")):
        campaign, contacts = make_sent_campaign(session, delivered=400, name=f"{kind}-{count}")
        if count:
            add_events(session, campaign, contacts, kind, count, **data)
        alerts = check_campaign(session, campaign_id=campaign.id, thresholds=T)
        severities = [a.severity for a in alerts if a.kind == alert_kind]
        assert severities == ([expected] if expected else []), (kind, count, severities)
        if expected == "critical":
            assert session.get(Campaign, campaign.id).status == "paused"
        else:
            assert session.get(Campaign, campaign.id).status == "sending"


def test_soft_bounces_and_small_samples_raise_nothing(session) -> None:
    campaign, contacts = make_sent_campaign(session, delivered=400)
    add_events(session, campaign, contacts, "bounced", 100, kind="soft")
    assert check_campaign(session, campaign_id=campaign.id, thresholds=T) == []
    small, people = make_sent_campaign(session, delivered=50, name="small")
    add_events(session, small, people, "unsubscribed", 10)
    assert check_campaign(session, campaign_id=small.id, thresholds=T) == []  # below the minimum sample


def test_the_periodic_rejudge_waits_for_the_minimum_sample_while_a_campaign_is_still_sending(session) -> None:
    """One hard bounce among a sending campaign's first five mails is no 20 % spike; once the
    campaign has finished, its whole (small) send is judged."""
    sending, people = make_sent_campaign(session, delivered=5, name="sending")
    add_events(session, sending, people, "bounced", 1, kind="hard")
    finished, others = make_sent_campaign(session, delivered=5, status="finished", name="finished",
                                          finished_at=datetime.now(timezone.utc))
    add_events(session, finished, others, "bounced", 1, kind="hard")
    alerts = check_recent(session, thresholds=T)
    assert [(a.campaign_id, a.kind) for a in alerts] == [(finished.id, "hard_bounce_spike")]
    assert session.get(Campaign, sending.id).status == "sending"


def test_an_alert_is_not_repeated(session) -> None:
    campaign, contacts = make_sent_campaign(session, delivered=200)
    add_events(session, campaign, contacts, "unsubscribed", 5)
    assert len(check_campaign(session, campaign_id=campaign.id, thresholds=T)) == 1
    assert check_campaign(session, campaign_id=campaign.id, thresholds=T) == []
    assert len(session.scalars(select(Alert)).all()) == 1


def test_baseline_rule_twice_the_median_of_recent_sends(session) -> None:
    """Row 29: warn above 2 × the median of the last sends (≥ 5 unsubscribes, ≥ 500 delivered)."""
    for i in range(3):
        old, people = make_sent_campaign(session, delivered=500, status="finished", name=f"old{i}",
                                         finished_at=NOW - timedelta(days=10 - i))
        add_events(session, old, people, "unsubscribed", 1)  # 0.2 %
    # 5 of 1,100 = 0.45 %: under the absolute 0.5 % warning, above 2 × the 0.2 % median.
    big, people = make_sent_campaign(session, delivered=1100, name="big")
    add_events(session, big, people, "unsubscribed", 5)  # 0.45 %
    alerts = check_campaign(session, campaign_id=big.id, thresholds=T)
    assert [a.severity for a in alerts] == ["warning"]
    assert "median" in alerts[0].message
    quiet, people = make_sent_campaign(session, delivered=1100, name="quiet")
    add_events(session, quiet, people, "unsubscribed", 4)  # fewer than 5 unsubscribes: no baseline alert
    assert check_campaign(session, campaign_id=quiet.id, thresholds=T) == []


def test_critical_alert_names_the_group_that_drove_it(session) -> None:
    campaign, contacts = make_sent_campaign(
        session, delivered=400,
        contact_fields=lambda i: {"country": "DE" if i < 100 else "US", "stage": "new_lead" if i % 2 else "customer"},
    )
    # 8 unsubscribes, all in Germany (region eu): 2 % overall, 8 % in the EU.
    add_events(session, campaign, contacts[:100], "unsubscribed", 8)
    alerts = check_campaign(session, campaign_id=campaign.id, thresholds=T)
    assert alerts[0].severity == "critical"
    driver = alerts[0].data["driver"]
    assert (driver["dimension"], driver["value"]) in {("region", "eu"), ("country", "DE")}
    assert "paused" in alerts[0].message


def test_breakdown_and_reasons_and_recommendations(session) -> None:
    campaign, contacts = make_sent_campaign(
        session, delivered=60,
        contact_fields=lambda i: {"stage": "new_lead" if i < 30 else "customer",
                                  "industry": "furniture" if i % 3 == 0 else "lighting"},
    )
    add_events(session, campaign, contacts[:4], "unsubscribed", 4, method="page")
    for contact in contacts[:4]:  # new leads say "too many"
        session.add(Event(kind="unsubscribe_reason", contact_id=contact.id, campaign_id=campaign.id,
                          data={"reason": "too_many", "text": "every week is a lot"}))
    furniture = [c for c in contacts if c.industry == "furniture"][:3]
    for contact in furniture:
        session.add(Event(kind="unsubscribe_reason", contact_id=contact.id, campaign_id=campaign.id,
                          data={"reason": "not_relevant"}))
    session.flush()
    by_stage = {r.key: r for r in breakdown(session, dimension="stage", campaign_id=campaign.id)}
    assert by_stage["new_lead"].unsubscribed == 4 and by_stage["customer"].unsubscribed == 0
    assert by_stage["new_lead"].unsubscribed_by_method == {"page": 4}
    assert campaign_rates(session, campaign_id=campaign.id).unsubscribe_rate == pytest.approx(4 / 60)
    r = reasons(session, campaign_id=campaign.id, dimension="stage")
    assert r["counts"]["new_lead"]["too_many"] >= 3
    assert {"reason": "too_many", "text": "every week is a lot", "stage": "new_lead"} in r["free_text"]
    codes = {rec.code: rec for rec in recommend(session, campaign_id=campaign.id)}
    assert "new_lead" in codes["lower_stage_cap"].title
    assert codes["review_targeting"].evidence["industry"] == "furniture"


def test_unknown_dimension_is_a_clear_error(session) -> None:
    with pytest.raises(ValueError, match="unknown dimension 'colour'"):
        breakdown(session, dimension="colour")


def test_a_new_alert_queues_an_alert_raised_webhook_in_its_transaction(session) -> None:
    from sendwell.db.models import OutboxMessage

    campaign, contacts = make_sent_campaign(session, delivered=200)
    add_events(session, campaign, contacts, "unsubscribed", 5)
    [alert] = check_campaign(session, campaign_id=campaign.id, thresholds=T)
    events = [r.payload for r in session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "event"))]
    assert [(e["event"], e["data"]["alert_id"], e["data"]["kind"], e["data"]["campaign_id"]) for e in events] == [
        ("alert.raised", alert.id, "unsubscribe_spike", campaign.id)]
    assert check_campaign(session, campaign_id=campaign.id, thresholds=T) == []  # no new alert, no new event
    assert len(session.scalars(select(OutboxMessage)).all()) == 1
