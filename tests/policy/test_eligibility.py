"""Eligibility on SQLite and PostgreSQL: every cap, tier, pause, kind and skip reason."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sendwell.campaigns.service import create_campaign, get_campaign
from sendwell.contacts.records import ensure_topic
from sendwell.db.models import Campaign, Consent, Send, Subscription, Suppression
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.progress import campaign_status
from tests.conftest import make_settings
from tests.helpers import make_contact

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # a Wednesday
DAY = timedelta(days=1)


def prior_send(s, contact, *, at: datetime | None, kind: str = "marketing", state: str = "sent") -> Send:
    """A mail of an earlier campaign to this contact (sent at `at`, or still in flight)."""
    campaign = Campaign(name=f"earlier {kind}", subject="s", html="h", kind=kind, status="finished")
    s.add(campaign)
    s.flush()
    send = Send(campaign_id=campaign.id, contact_id=contact.id, state=state, sent_at=at)
    s.add(send)
    s.flush()
    return send


def plan(runtime, *, now=NOW, settings=None, segment="", **kw) -> int:
    with transaction(runtime.factory) as s:
        c = create_campaign(s, settings=runtime.settings, name="Test", subject="Hi", html="<p>x</p>",
                            segment=segment, **kw)
        plan_campaign(s, campaign=c, now=now, settings=settings or runtime.settings)
        queue_campaign(s, campaign=c)
        return c.id


def reasons(runtime, campaign_id) -> dict[int, str | None]:
    """contact id → skip reason (None when planned/queued)."""
    with transaction(runtime.factory) as s:
        return {r.contact_id: r.skip_reason for r in s.scalars(select(Send).where(Send.campaign_id == campaign_id))}


def states(runtime, campaign_id) -> dict[int, Send]:
    with transaction(runtime.factory) as s:
        return {r.contact_id: r for r in s.scalars(select(Send).where(Send.campaign_id == campaign_id))}


# ------------------------------------------------------------------ stage caps (defaults)
@pytest.mark.parametrize(
    ("stage", "ages_in_days", "expected"),
    [
        ("new_lead", [], None),
        ("new_lead", [3], None),  # 1 of 2 per 30 days
        ("new_lead", [3, 20], "frequency_cap"),  # 2 of 2
        ("new_lead", [3, 31], None),  # the older one left the 30-day window
        ("prospect", [6], "frequency_cap"),  # 1 per 7 days
        ("prospect", [8], None),
        ("customer", [1, 2], None),  # 2 of 3 per 30 days
        ("customer", [1, 2, 29], "frequency_cap"),
        ("customer", [1, 2, 30.5], None),
    ],
)
def test_default_stage_caps(runtime, stage, ages_in_days, expected) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage=stage)
        for age in ages_in_days:
            prior_send(s, contact, at=NOW - timedelta(days=age))
        cid = contact.id
    assert reasons(runtime, plan(runtime))[cid] == expected


def test_stage_caps_come_from_the_setting_and_cover_other_stages(runtime, tmp_path) -> None:
    settings = make_settings(tmp_path / "d2", database_url=runtime.settings.database_url,
                             stage_caps="prospect=2/7d,distributor=1/12h")
    with transaction(runtime.factory) as s:
        prospect = make_contact(s, stage="prospect")
        prior_send(s, prospect, at=NOW - DAY)  # 1 of 2: allowed under the configured cap
        distributor = make_contact(s, stage="distributor")
        prior_send(s, distributor, at=NOW - timedelta(hours=11))
        rested = make_contact(s, stage="distributor")
        prior_send(s, rested, at=NOW - timedelta(hours=13))
        customer = make_contact(s, stage="customer")  # no cap configured any more
        for age in (1, 2, 3, 4):
            prior_send(s, customer, at=NOW - timedelta(days=age))
        ids = prospect.id, distributor.id, rested.id, customer.id
    got = reasons(runtime, plan(runtime, settings=settings))
    assert [got[i] for i in ids] == [None, "frequency_cap", None, None]


# ------------------------------------------------------------------ tiers
@pytest.mark.parametrize(
    ("tier", "stage", "ages_in_days", "expected"),
    [
        ("weekly", "customer", [3], "frequency_cap"),  # stage allows 3/30d, the tier 1/7d
        ("weekly", "customer", [8, 9], None),
        ("monthly", "customer", [20], "frequency_cap"),
        ("monthly", "customer", [31], None),
        ("default", "customer", [20], None),
        ("weekly", "new_lead", [10, 20], "frequency_cap"),  # tier is fine, the stage cap is not
    ],
)
def test_recipient_tiers_and_the_stricter_limit(runtime, tier, stage, ages_in_days, expected) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage=stage, frequency_tier=tier)
        for age in ages_in_days:
            prior_send(s, contact, at=NOW - timedelta(days=age))
        cid = contact.id
    assert reasons(runtime, plan(runtime))[cid] == expected


@pytest.mark.parametrize(("kind", "expected"), [("marketing", "launches_only"), ("launch", None),
                                                 ("reconfirmation", "launches_only"), ("transactional", None)])
def test_launches_only_tier_gets_launches(runtime, kind, expected) -> None:
    with transaction(runtime.factory) as s:
        cid = make_contact(s, frequency_tier="launches_only").id
    assert reasons(runtime, plan(runtime, kind=kind))[cid] == expected


def test_launch_campaigns_still_count_toward_caps(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage="prospect", frequency_tier="launches_only")
        prior_send(s, contact, at=NOW - 2 * DAY, kind="launch")
        cid = contact.id
    assert reasons(runtime, plan(runtime, kind="launch"))[cid] == "frequency_cap"


# ------------------------------------------------------------------ pauses
def test_pause_skips_until_it_ends(runtime) -> None:
    with transaction(runtime.factory) as s:
        cid = make_contact(s, paused_until=NOW + 90 * DAY).id
    assert reasons(runtime, plan(runtime))[cid] == "paused"
    # The same contact, planned by a campaign after paused_until: the pause ended by itself.
    assert reasons(runtime, plan(runtime, now=NOW + 91 * DAY))[cid] is None


# ------------------------------------------------------------------ kinds
def test_transactional_is_exempt_from_caps_and_pauses_but_not_from_suppression(runtime) -> None:
    with transaction(runtime.factory) as s:
        capped = make_contact(s, stage="prospect")
        prior_send(s, capped, at=NOW - DAY)
        paused = make_contact(s, paused_until=NOW + 30 * DAY)
        complainer = make_contact(s)
        s.add(Suppression(email_hash=complainer.email_hash, reason="complaint"))
        ids = capped.id, paused.id, complainer.id
    got = reasons(runtime, plan(runtime, kind="transactional"))
    assert [got[i] for i in ids] == [None, None, "complained"]


def test_transactional_mail_does_not_use_up_the_marketing_cap(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage="prospect")
        prior_send(s, contact, at=NOW - DAY, kind="transactional")
        cid = contact.id
    assert reasons(runtime, plan(runtime))[cid] is None


def test_reconfirmation_reaches_only_still_subscribed_contacts(runtime) -> None:
    with transaction(runtime.factory) as s:
        topic = ensure_topic(s, slug="led")
        other = ensure_topic(s, slug="solar")
        left_all = make_contact(s)
        s.add_all([Subscription(contact_id=left_all.id, topic_id=topic.id, status="unsubscribed"),
                   Subscription(contact_id=left_all.id, topic_id=other.id, status="unsubscribed")])
        stays = make_contact(s)
        s.add_all([Subscription(contact_id=stays.id, topic_id=topic.id, status="unsubscribed"),
                   Subscription(contact_id=stays.id, topic_id=other.id, status="subscribed")])
        ids = left_all.id, stays.id
    got = reasons(runtime, plan(runtime, kind="reconfirmation"))
    assert [got[i] for i in ids] == ["unsubscribed_topic", None]
    got = reasons(runtime, plan(runtime, kind="reconfirmation", topic="led"))
    assert [got[i] for i in ids] == ["unsubscribed_topic", "unsubscribed_topic"]


# ------------------------------------------------------------------ every skip reason
def test_every_skip_reason_is_recorded_and_counted(runtime) -> None:
    expected: dict[int, str | None] = {}
    with transaction(runtime.factory) as s:
        topic = ensure_topic(s, slug="led")

        def contact(reason: str | None, **kw):
            c = make_contact(s, **kw)
            s.add(Subscription(contact_id=c.id, topic_id=topic.id))
            s.flush()
            expected[c.id] = reason
            return c

        contact(None)
        for suppression, reason in [("unsubscribe", "unsubscribed"), ("complaint", "complained"),
                                    ("hard_bounce", "bounced"), ("soft_bounce_streak", "soft_bounce_streak"),
                                    ("sunset", "sunset"), ("manual", "suppressed"), ("erased", "erased")]:
            c = contact(reason)
            s.add(Suppression(email_hash=c.email_hash, reason=suppression))
        c = contact("unsubscribed_topic")
        s.add(Suppression(email_hash=c.email_hash, reason="unsubscribe", scope="led"))
        c = make_contact(s)  # never subscribed to the topic
        expected[c.id] = "not_subscribed_to_topic"
        c = make_contact(s)
        s.add(Subscription(contact_id=c.id, topic_id=topic.id, status="unsubscribed"))
        expected[c.id] = "unsubscribed_topic"
        contact("no_consent", consent=None)
        c = contact("no_consent")
        s.execute(Consent.__table__.update().where(Consent.contact_id == c.id).values(withdrawn_at=NOW - DAY))
        c = contact("consent_expired", consent="implied_inquiry", country="CA")  # CASL s10(10)
        s.execute(Consent.__table__.update().where(Consent.contact_id == c.id).values(expires_at=NOW - DAY))
        contact("invalid_address", email="not-an-address")
        contact("paused", paused_until=NOW + DAY)
        c = contact("frequency_cap", stage="prospect")
        prior_send(s, c, at=NOW - DAY)
        contact("launches_only", frequency_tier="launches_only")
        # A complained contact is reported as complained whatever else is true of it.
        c = contact("complained", paused_until=NOW + DAY, consent=None)
        s.add(Suppression(email_hash=c.email_hash, reason="complaint"))
    campaign_id = plan(runtime, topic="led")
    assert reasons(runtime, campaign_id) == expected
    with transaction(runtime.factory) as s:
        status = campaign_status(s, campaign_id=campaign_id)
    wanted: dict[str, int] = {}
    for reason in expected.values():
        if reason:
            wanted[reason] = wanted.get(reason, 0) + 1
    assert status["skipped"] == wanted
    assert status["states"]["queued"] == 1


# ------------------------------------------------------------------ in-flight mail counts
def test_a_campaign_still_queued_counts_toward_the_next_plan(runtime) -> None:
    with transaction(runtime.factory) as s:
        cid = make_contact(s, stage="prospect").id
    first = plan(runtime)
    assert reasons(runtime, first)[cid] is None  # queued, not sent yet
    assert reasons(runtime, plan(runtime))[cid] == "frequency_cap"


def test_claim_re_checks_the_cap(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage="prospect")
        cid = contact.id
    campaign_id = plan(runtime)
    with transaction(runtime.factory) as s:
        # Another mail went out to the contact after the plan (e.g. an older campaign's retry).
        prior_send(s, s.get(type(contact), cid), at=NOW + timedelta(hours=1))
    with transaction(runtime.factory) as s:
        assert claim_sends(s, campaign_id=campaign_id, now=NOW + timedelta(hours=2)) == []
    assert reasons(runtime, campaign_id)[cid] == "frequency_cap"
    assert states(runtime, campaign_id)[cid].state == "skipped"


def test_claim_re_checks_a_pause_set_after_planning(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s)
        cid = contact.id
    campaign_id = plan(runtime)
    with transaction(runtime.factory) as s:
        s.get(type(contact), cid).paused_until = NOW + 90 * DAY
    with transaction(runtime.factory) as s:
        assert claim_sends(s, campaign_id=campaign_id, now=NOW) == []
    assert reasons(runtime, campaign_id)[cid] == "paused"


# ------------------------------------------------------------------ defer mode
def test_over_cap_defer_waits_for_the_earliest_allowed_time_then_sends(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage="prospect")
        prior_send(s, contact, at=NOW - 2 * DAY)
        cid = contact.id
    campaign_id = plan(runtime, over_cap="defer")
    send = states(runtime, campaign_id)[cid]
    assert send.state == "deferred" and send.skip_reason == "frequency_cap"
    assert send.retry_at == NOW + 5 * DAY  # the earlier mail leaves the 7-day window
    with transaction(runtime.factory) as s:
        status = campaign_status(s, campaign_id=campaign_id)
        assert status["deferred"] == {"frequency_cap": 1} and status["skipped"] == {}
        assert claim_sends(s, campaign_id=campaign_id, now=NOW + 4 * DAY) == []  # not due yet
    with transaction(runtime.factory) as s:
        claimed = claim_sends(s, campaign_id=campaign_id, now=NOW + 5 * DAY + timedelta(seconds=1))
    assert claimed == [send.id]  # the re-check at claim time passes
    after = states(runtime, campaign_id)[cid]
    assert after.state == "sending" and after.skip_reason is None


def test_deferred_send_moves_on_when_another_mail_went_out_meanwhile(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage="prospect")
        prior_send(s, contact, at=NOW - 2 * DAY)
        cid = contact.id
    campaign_id = plan(runtime, over_cap="defer")
    with transaction(runtime.factory) as s:
        prior_send(s, s.get(type(contact), cid), at=NOW + 5 * DAY, kind="marketing")
    with transaction(runtime.factory) as s:
        assert claim_sends(s, campaign_id=campaign_id, now=NOW + 5 * DAY + timedelta(hours=1)) == []
    send = states(runtime, campaign_id)[cid]
    assert send.state == "deferred" and send.retry_at == NOW + 12 * DAY


def test_two_deferred_campaigns_go_out_in_planning_order_not_never(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage="prospect")
        prior_send(s, contact, at=NOW - 2 * DAY)
        cid = contact.id
    first = plan(runtime, over_cap="defer")
    second = plan(runtime, over_cap="defer", now=NOW + timedelta(minutes=1))
    assert states(runtime, first)[cid].retry_at == NOW + 5 * DAY
    assert states(runtime, second)[cid].retry_at == NOW + 7 * DAY + timedelta(minutes=1)
    later = NOW + 8 * DAY  # both are due; the first has not gone out yet
    with transaction(runtime.factory) as s:
        # The second waits for the first (planned earlier, still in flight) …
        assert claim_sends(s, campaign_id=second, now=later) == []
    with transaction(runtime.factory) as s:
        # … and the first is not held back by the second.
        assert len(claim_sends(s, campaign_id=first, now=later)) == 1
    assert states(runtime, second)[cid].state == "deferred"


def test_skip_is_the_default_over_cap_handling(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage="prospect")
        prior_send(s, contact, at=NOW - DAY)
        cid = contact.id
    campaign_id = plan(runtime)
    assert states(runtime, campaign_id)[cid].state == "skipped"
    with transaction(runtime.factory) as s:
        assert get_campaign(s, campaign_id=campaign_id).over_cap == "skip"


# ------------------------------------------------------------------ sending windows
def test_send_window_defers_to_the_local_opening_not_skips(runtime, tmp_path) -> None:
    settings = make_settings(tmp_path / "d2", database_url=runtime.settings.database_url,
                             send_window="mon-fri 09:00-17:00; au=mon-fri 10:00-16:00")
    with transaction(runtime.factory) as s:
        berlin = make_contact(s, country="DE")  # 11:00 in Berlin: inside
        chicago = make_contact(s, country="US", timezone="America/Chicago")  # 04:00: outside
        new_york = make_contact(s, country="US")  # no own timezone: the country's default
        sydney = make_contact(s, country="AU")  # 21:00 in Sydney: after the AU window
        ids = berlin.id, chicago.id, new_york.id, sydney.id
    campaign_id = plan(runtime, settings=settings)
    got = states(runtime, campaign_id)
    assert got[ids[0]].state == "queued"
    assert got[ids[1]].state == "deferred" and got[ids[1]].skip_reason == "send_window"
    assert got[ids[1]].retry_at == datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)  # 09:00 CST
    assert got[ids[2]].retry_at == datetime(2026, 11, 25, 14, 0, tzinfo=timezone.utc)  # 09:00 EST
    assert got[ids[3]].retry_at == datetime(2026, 11, 25, 23, 0, tzinfo=timezone.utc)  # Thu 10:00 AEDT
    with transaction(runtime.factory) as s:
        assert campaign_status(s, campaign_id=campaign_id)["deferred"] == {"send_window": 3}
        claimed = claim_sends(s, campaign_id=campaign_id, now=datetime(2026, 11, 25, 15, 0, 1, tzinfo=timezone.utc))
    assert set(claimed) == {got[i].id for i in ids[:3]}


def test_claim_outside_the_window_defers_to_monday(runtime, tmp_path) -> None:
    settings = make_settings(tmp_path / "d2", database_url=runtime.settings.database_url,
                             send_window="mon-fri 09:00-17:00")
    with transaction(runtime.factory) as s:
        cid = make_contact(s, country="DE").id
    campaign_id = plan(runtime, settings=settings)  # Wednesday 11:00 Berlin: queued
    friday_evening = datetime(2026, 11, 27, 17, 30, tzinfo=timezone.utc)  # 18:30 Berlin
    with transaction(runtime.factory) as s:
        assert claim_sends(s, campaign_id=campaign_id, now=friday_evening) == []
    send = states(runtime, campaign_id)[cid]
    assert send.state == "deferred" and send.skip_reason == "send_window"
    assert send.retry_at == datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)  # Mon 09:00 CET


# ------------------------------------------------------------------ the recipient's own choice
def test_frequency_preference_is_validated_recorded_and_obeyed(runtime) -> None:
    from sendwell.db.models import Event
    from sendwell.policy.caps import PolicyError
    from sendwell.policy.service import set_frequency_preference

    with transaction(runtime.factory) as s:
        contact = make_contact(s, stage="customer")
        prior_send(s, contact, at=NOW - 3 * DAY)
        cid = contact.id
        assert set_frequency_preference(s, contact_id=cid, tier="weekly", now=NOW) == {
            "frequency_tier": ["default", "weekly"]}
        assert set_frequency_preference(s, contact_id=cid, tier="weekly", now=NOW) == {}  # no second event
        with pytest.raises(PolicyError, match="unknown frequency tier 'daily'"):
            set_frequency_preference(s, contact_id=cid, tier="daily")
        events = list(s.scalars(select(Event).where(Event.contact_id == cid, Event.kind == "preferences_changed")))
        assert len(events) == 1 and events[0].method == "preference_center"
    assert reasons(runtime, plan(runtime))[cid] == "frequency_cap"  # weekly: 1 per 7 days
    with transaction(runtime.factory) as s:
        set_frequency_preference(s, contact_id=cid, tier="default", paused_until=NOW + 30 * DAY)
    assert reasons(runtime, plan(runtime))[cid] == "paused"
    with transaction(runtime.factory) as s:
        set_frequency_preference(s, contact_id=cid, paused_until=None)  # resume now
    assert reasons(runtime, plan(runtime))[cid] is None
