"""Use cases that cross contexts; every adapter (CLI, REST API, demo) starts a send through here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from sendwell.config import Settings


def start_sending(
    session: Session, *, settings: Settings, campaign_id: int, now: datetime | None = None
) -> list[list[int]]:
    """Gate, plan and queue a campaign; returns the batches of send ids to hand to the queue.

    The blocking compliance lint runs first (content.service.ComplianceError: nothing is
    planned), then the plan with the configured frequency policy, then the queue step. One
    function, so no entry point can skip the gate or plan with the wrong caps. `now` plans as
    of another time (the hygiene pass's --as-of).
    """
    from sendwell.content.service import assert_sendable
    from sendwell.delivery.service import get_campaign, plan_campaign, queue_campaign

    campaign = get_campaign(session, campaign_id=campaign_id)
    assert_sendable(session, settings=settings, campaign_id=campaign_id)
    plan_campaign(session, campaign=campaign, settings=settings, now=now)
    return queue_campaign(session, campaign=campaign, batch_size=settings.batch_size)
