"""The dry-run send plan: the real planner's numbers, written nowhere; a plan to nobody finishes at once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from sendwell.campaigns.service import create_campaign, get_campaign
from sendwell.db.models import Base, Campaign, Contact, Send, Suppression
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends
from sendwell.delivery.dkim import generate_private_key
from sendwell.delivery.progress import campaign_status
from sendwell.delivery.warmup import parse_schedule, start_plan
from sendwell.flows import plan_preview, start_sending
from sendwell.policy.eligibility import SKIP_LABELS, SKIP_REASONS
from tests.conftest import make_settings
from tests.helpers import make_contact

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # a Wednesday, 11:00 in Berlin
HTML = "<p>Hello {{ first_name }}, our new LED panels.</p>"


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dkim") / "plan.pem"
    path.write_bytes(generate_private_key("rsa", 2048))
    return str(path)


@pytest.fixture
def sendable(runtime, tmp_path, dkim_key):
    """Settings the send gate passes (DKIM, privacy notice), with the caps and sending window given."""
    return make_settings(tmp_path / "send", database_url=runtime.settings.database_url,
                         dkim_domain="bright-lighting.example", dkim_key_file=dkim_key,
                         privacy_url="https://bright-lighting.example/privacy")


@pytest.fixture
def policy_settings(sendable):
    """Caps of one mail a week per prospect and a weekday 09:00–17:00 sending window."""
    return sendable.replace(stage_caps="prospect=1/7d", send_window="mon-fri 09:00-17:00")


def seed(runtime) -> dict[str, int]:
    """Eight contacts: three inside the window, one outside, and one each suppressed, capped, without basis, erased."""
    with transaction(runtime.factory) as s:
        for _ in range(2):
            make_contact(s, country="DE", language="de")
        make_contact(s, country="FR", language="fr")
        make_contact(s, country="US", language="en", timezone="America/Chicago")  # 04:00 there: deferred
        suppressed = make_contact(s, country="DE")
        s.add(Suppression(email_hash=suppressed.email_hash, reason="complaint"))
        capped = make_contact(s, country="DE")
        earlier = Campaign(name="earlier", subject="s", html="h", status="finished")
        s.add(earlier)
        s.flush()
        s.add(Send(campaign_id=earlier.id, contact_id=capped.id, state="sent", sent_at=NOW - timedelta(days=2)))
        make_contact(s, country="DE", consent=None)  # no lawful basis
        campaign = create_campaign(s, settings=runtime.settings, name="Winter range", subject="New panels", html=HTML)
        return {"campaign": campaign.id}


def row_counts(runtime) -> dict[str, int]:
    with transaction(runtime.factory) as s:
        return {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def test_the_dry_run_counts_what_the_send_then_does(runtime, policy_settings) -> None:
    campaign_id = seed(runtime)["campaign"]
    with transaction(runtime.factory) as s:
        plan = plan_preview(s, settings=policy_settings, campaign_id=campaign_id, now=NOW)
    assert plan.contacts == 7 and plan.reachable == 5
    assert plan.now == 3 and plan.deferred == {"send_window": 1} and plan.recipients == 4
    assert plan.skipped == {"complained": 1, "frequency_cap": 1, "no_consent": 1}
    assert plan.by_region == {"eu": 3, "us": 1} and plan.by_language == {"de": 2, "en": 1, "fr": 1}
    assert not plan.blocked

    with transaction(runtime.factory) as s:
        batches = start_sending(s, settings=policy_settings, campaign_id=campaign_id, now=NOW)
    with transaction(runtime.factory) as s:
        status = campaign_status(s, campaign_id=campaign_id)
        regions = dict(s.execute(select(Contact.region, func.count()).join(Send, Send.contact_id == Contact.id)
                                 .where(Send.campaign_id == campaign_id, Send.state != "skipped")
                                 .group_by(Contact.region)).all())
    assert sum(map(len, batches)) == status["states"]["queued"] == plan.now
    assert status["skipped"] == plan.skipped and status["deferred"] == plan.deferred
    assert status["total"] == plan.contacts and regions == plan.by_region


def test_the_dry_run_leaves_no_row_and_the_campaign_a_draft(runtime, policy_settings) -> None:
    campaign_id = seed(runtime)["campaign"]
    before = row_counts(runtime)
    with transaction(runtime.factory) as s:
        plan_preview(s, settings=policy_settings, campaign_id=campaign_id, now=NOW)
    assert row_counts(runtime) == before
    with transaction(runtime.factory) as s:
        campaign = get_campaign(s, campaign_id=campaign_id)
        assert (campaign.status, campaign.started_at, campaign.policy) == ("draft", None, None)


def test_mail_over_the_warm_up_allowance_shows_as_deferred_by_warm_up(runtime, sendable) -> None:
    day = NOW.date()
    with transaction(runtime.factory) as s:
        for _ in range(5):
            make_contact(s, country="DE", email=f"buyer{_}@t-online.de")
        start_plan(s, target="bright-lighting.example", schedule=parse_schedule("2"), start=day)
        campaign_id = create_campaign(s, settings=runtime.settings, name="Warm", subject="s", html=HTML).id
    with transaction(runtime.factory) as s:
        plan = plan_preview(s, settings=sendable, campaign_id=campaign_id, now=NOW)
    assert (plan.now, plan.deferred, plan.recipients) == (2, {"warm_up": 3}, 5)
    with transaction(runtime.factory) as s:
        start_sending(s, settings=sendable, campaign_id=campaign_id, now=NOW)
    with transaction(runtime.factory) as s:
        assert len(claim_sends(s, campaign_id=campaign_id, now=NOW)) == plan.now


def test_a_campaign_planned_to_nobody_finishes_at_once_with_its_reasons(runtime, sendable) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, consent=None)
        unsubscribed = make_contact(s)
        s.add(Suppression(email_hash=unsubscribed.email_hash, reason="unsubscribe"))
        campaign_id = create_campaign(s, settings=runtime.settings, name="Nobody", subject="s", html=HTML).id
        empty_id = create_campaign(s, settings=runtime.settings, name="Empty", subject="s", html=HTML,
                                   segment="country = JP").id
    for cid in (campaign_id, empty_id):
        with transaction(runtime.factory) as s:
            assert start_sending(s, settings=sendable, campaign_id=cid) == []
    with transaction(runtime.factory) as s:
        status = campaign_status(s, campaign_id=campaign_id)
        assert status["status"] == "finished" and status["skipped"] == {"no_consent": 1, "unsubscribed": 1}
        assert get_campaign(s, campaign_id=campaign_id).finished_at is not None
        assert campaign_status(s, campaign_id=empty_id)["status"] == "finished"


def test_every_skip_and_defer_reason_has_a_label() -> None:
    assert set(SKIP_REASONS) | {"send_window", "warm_up", "retry"} <= set(SKIP_LABELS)
