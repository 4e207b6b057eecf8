"""Clone, rename, delete and archive campaigns (campaigns/service.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sendwell.campaigns.service import (
    CampaignError,
    archive_campaign,
    clone_campaign,
    create_campaign,
    delete_campaign,
    is_archived,
    rename_campaign,
    set_campaign_status,
)
from sendwell.db.models import Campaign, Send
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from tests.helpers import make_contact, run_once

HTML = "<p>Dear {{ contact.first_name }}, our new panels.</p>"


def _draft(runtime, **kw):
    with transaction(runtime.factory) as s:
        return create_campaign(s, settings=runtime.settings, name="Spring", subject="Spring panels", html=HTML,
                               text="Plain words", segment="region = eu", topic="news", kind="launch", **kw).id


def _sent(runtime) -> int:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE")
    campaign_id = _draft(runtime)
    with transaction(runtime.factory) as s:
        campaign = s.get(Campaign, campaign_id)
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign)
    assert run_once(runtime, campaign_id)["status"] == "finished"
    return campaign_id


def test_clone_copies_content_and_audience_but_not_sends_or_status(runtime) -> None:
    source_id = _sent(runtime)
    with transaction(runtime.factory) as s:
        copy = clone_campaign(s, campaign_id=source_id)
        copy_id = copy.id
    with transaction(runtime.factory) as s:
        source, copy = s.get(Campaign, source_id), s.get(Campaign, copy_id)
        assert copy.name == "Copy of Spring" and copy.status == "draft"
        assert (copy.subject, copy.html, copy.text, copy.segment_expr, copy.topic_id, copy.kind, copy.over_cap) == (
            source.subject, source.html, source.text, source.segment_expr, source.topic_id, source.kind,
            source.over_cap)
        assert copy.started_at is None and copy.finished_at is None and copy.policy is None
        assert s.scalar(select(func.count()).select_from(Send).where(Send.campaign_id == copy_id)) == 0
        assert s.scalar(select(func.count()).select_from(Send).where(Send.campaign_id == source_id)) == 1


def test_rename_works_in_any_status_and_needs_a_name(runtime) -> None:
    campaign_id = _sent(runtime)
    with transaction(runtime.factory) as s:
        rename_campaign(s, campaign_id=campaign_id, name="  Spring 2026 (EU)  ")
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, campaign_id).name == "Spring 2026 (EU)"
        with pytest.raises(CampaignError, match="needs a name"):
            rename_campaign(s, campaign_id=campaign_id, name="  ")


def test_only_a_draft_that_never_sent_can_be_deleted(runtime) -> None:
    draft_id = _draft(runtime)
    sent_id = _sent(runtime)
    with transaction(runtime.factory) as s:
        delete_campaign(s, campaign_id=draft_id)
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, draft_id) is None
        with pytest.raises(CampaignError, match="only a draft can be deleted"):
            delete_campaign(s, campaign_id=sent_id)
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, sent_id) is not None


def test_archive_takes_finished_or_cancelled_campaigns_only(runtime) -> None:
    draft_id = _draft(runtime)
    sent_id = _sent(runtime)
    cancelled_id = _draft(runtime)
    with transaction(runtime.factory) as s:
        set_campaign_status(s, campaign_id=cancelled_id, action="cancel")
        with pytest.raises(CampaignError, match="only a finished or cancelled"):
            archive_campaign(s, campaign_id=draft_id)
    with transaction(runtime.factory) as s:
        archive_campaign(s, campaign_id=sent_id)
        archive_campaign(s, campaign_id=cancelled_id)
    with transaction(runtime.factory) as s:
        assert is_archived(s, campaign_id=sent_id) and is_archived(s, campaign_id=cancelled_id)
        assert not is_archived(s, campaign_id=draft_id)
        archive_campaign(s, campaign_id=sent_id, archived=False)
    with transaction(runtime.factory) as s:
        assert not is_archived(s, campaign_id=sent_id)
