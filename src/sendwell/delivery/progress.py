"""Where a campaign's sends stand: counts by state and skip reason, rate and ETA, finishing, listings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.campaigns.service import get_campaign
from sendwell.db.models import Campaign, CampaignStatus, Send, SendState


def _now() -> datetime:
    return datetime.now(timezone.utc)


def state_counts(session: Session, *, campaign_id: int) -> dict[str, int]:
    """How many of the campaign's sends are in each state."""
    rows = session.execute(
        select(Send.state, func.count()).where(Send.campaign_id == campaign_id).group_by(Send.state)
    ).all()
    return {state: count for state, count in rows}


def campaign_status(session: Session, *, campaign_id: int) -> dict[str, Any]:
    """Counts by state and by skip reason, for `campaigns status`."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    skips = session.execute(
        select(Send.skip_reason, func.count())
        .where(Send.campaign_id == campaign_id, Send.state == SendState.SKIPPED.value)
        .group_by(Send.skip_reason)
    ).all()
    deferred = session.execute(
        select(Send.skip_reason, func.count())
        .where(Send.campaign_id == campaign_id, Send.state == SendState.DEFERRED.value)
        .group_by(Send.skip_reason)
    ).all()
    counts = state_counts(session, campaign_id=campaign_id)
    states = {s.value: counts.get(s.value, 0) for s in SendState}
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "status": campaign.status,
        "scheduled_at": campaign.scheduled_at.isoformat() if campaign.scheduled_at else None,
        "total": sum(counts.values()),
        "states": states,
        "skipped": {reason: count for reason, count in sorted(skips)},
        # Why sends wait: frequency_cap (defer mode), send_window, or null (an SMTP retry).
        "deferred": {reason or "retry": count for reason, count in sorted(deferred, key=lambda r: r[0] or "")},
        # Over a warm-up plan's daily allowance (delivery/warmup.py): they go on a later day.
        "waiting_for_warm_up": dict(deferred).get("warm_up", 0),
        "progress": campaign_progress(session, campaign=campaign, states=states),
    }


def campaign_progress(session: Session, *, campaign: Campaign, states: dict[str, int],
                      now: datetime | None = None, window: timedelta = timedelta(seconds=60)) -> dict[str, Any]:
    """Sending rate (last minute and overall), what is left, an ETA, and possible duplicates."""
    now = now or _now()
    recent = session.scalar(
        select(func.count()).select_from(Send).where(
            Send.campaign_id == campaign.id, Send.state == SendState.SENT.value, Send.sent_at >= now - window)
    ) or 0
    first_sent, last_sent = session.execute(
        select(func.min(Send.sent_at), func.max(Send.sent_at)).where(
            Send.campaign_id == campaign.id, Send.state == SendState.SENT.value)
    ).one()
    duplicates = session.scalar(
        select(func.count()).select_from(Send).where(Send.campaign_id == campaign.id, Send.possible_duplicate.is_(True))
    ) or 0
    overall = None
    if first_sent is not None and last_sent is not None and last_sent > first_sent:
        first_sent = first_sent if first_sent.tzinfo else first_sent.replace(tzinfo=timezone.utc)
        last_sent = last_sent if last_sent.tzinfo else last_sent.replace(tzinfo=timezone.utc)
        overall = round(states["sent"] / (last_sent - first_sent).total_seconds(), 1)
    remaining = sum(states[s] for s in ("planned", "queued", "sending", "deferred"))
    rate = recent / window.total_seconds()
    eta = round(remaining / rate) if rate > 0 and remaining else None
    done = sum(states[s] for s in ("sent", "failed"))
    return {
        "done": done,
        "remaining": remaining,
        "rate_per_second": round(rate, 1),
        "overall_rate_per_second": overall,
        "eta_seconds": eta,
        "possibly_duplicated": duplicates,
    }


def finish_if_done(session: Session, *, campaign_id: int) -> bool:
    """Mark the campaign finished when no send is left to try."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    open_states = (SendState.PLANNED.value, SendState.QUEUED.value, SendState.SENDING.value, SendState.DEFERRED.value)
    left = session.scalar(
        select(func.count()).select_from(Send).where(Send.campaign_id == campaign_id, Send.state.in_(open_states))
    )
    if left == 0 and campaign.status == CampaignStatus.SENDING.value:
        campaign.status = CampaignStatus.FINISHED.value
        campaign.finished_at = _now()
        return True
    return False


def list_sends(
    session: Session, *, campaign_id: int, state: str | None = None, after: int = 0, limit: int = 50
) -> list[Send]:
    """A campaign's sends in id order after a cursor, optionally in one state."""
    query = select(Send).where(Send.campaign_id == campaign_id, Send.id > after).order_by(Send.id).limit(limit)
    if state is not None:
        query = query.where(Send.state == state)
    return list(session.scalars(query))
