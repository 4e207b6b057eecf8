"""Planning a campaign into sends (eligibility checked, skips recorded) and queueing them in batches."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import case, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sendwell.campaigns.service import CampaignError, topic_slug
from sendwell.config import Settings
from sendwell.db.models import Campaign, CampaignStatus, Contact, Send, SendState
from sendwell.delivery.claims import BATCH_SIZE, chunks
from sendwell.delivery.progress import state_counts
from sendwell.policy.caps import FrequencyPolicy
from sendwell.policy.eligibility import skip_reason
from sendwell.policy.service import defer_outside_window, defer_over_cap, lock_planning
from sendwell.segments.expression import compile_segment


def _now() -> datetime:
    return datetime.now(timezone.utc)


def plan_campaign(
    session: Session, *, campaign: Campaign, now: datetime | None = None, settings: Settings | None = None
) -> dict[str, int]:
    """One `sends` row per contact in the segment, eligible ones planned, others skipped with a reason.

    The frequency policy comes from `settings` (else the campaign's snapshot, else the
    defaults) and is stored on the campaign, so the claim-time re-check applies the same rules.
    """
    now = now or _now()
    if campaign.status in (CampaignStatus.CANCELLED.value, CampaignStatus.FINISHED.value):
        raise CampaignError(f"campaign {campaign.id} is {campaign.status}")
    if campaign.status == CampaignStatus.SCHEDULED.value:
        raise CampaignError(f"campaign {campaign.id} is scheduled for {campaign.scheduled_at:%Y-%m-%d %H:%M} UTC: "
                            "unschedule it to send it now")
    policy = FrequencyPolicy.from_settings(settings) if settings is not None else FrequencyPolicy.from_json(campaign.policy)
    campaign.policy = policy.to_json()
    lock_planning(session)  # before the INSERT's snapshot: see lock_planning for why
    reason = skip_reason(campaign, topic_slug(session, campaign), now, policy=policy)
    # One INSERT … SELECT for the whole segment: planned when the reason is NULL, skipped
    # otherwise. Re-planning is harmless: existing (campaign, contact) rows are kept.
    source = select(
        literal(campaign.id).label("campaign_id"),
        Contact.id.label("contact_id"),
        reason.label("skip_reason"),
    ).where(compile_segment(campaign.segment_expr))
    # OFFSET 0 keeps the database from inlining the subquery into the outer SELECT: inlined,
    # the reason expression (several correlated subqueries per contact) would be evaluated
    # twice per row, once for `state` and once for `skip_reason` (seen in EXPLAIN ANALYZE).
    sub = source.offset(0).subquery()
    state = case((sub.c.skip_reason.is_(None), SendState.PLANNED.value), else_=SendState.SKIPPED.value)
    select_rows = select(
        sub.c.campaign_id, sub.c.contact_id, state, sub.c.skip_reason, literal(0), literal(now)
    ).where(true())  # SQLite: INSERT … SELECT needs a WHERE before ON CONFLICT (parsing ambiguity)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Send).from_select(
        ["campaign_id", "contact_id", "state", "skip_reason", "attempts", "updated_at"], select_rows
    )
    # ON CONFLICT makes PostgreSQL insert each row speculatively; a first plan cannot conflict
    # (plans of every campaign are serialised by lock_planning), so only a re-plan pays for it.
    if session.scalar(select(Send.id).where(Send.campaign_id == campaign.id).limit(1)) is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["contact_id", "campaign_id"])
    session.execute(stmt)
    defer_over_cap(session, campaign=campaign, policy=policy, now=now)
    defer_outside_window(session, campaign=campaign, policy=policy, now=now)
    if campaign.status == CampaignStatus.DRAFT.value:
        campaign.status = CampaignStatus.SENDING.value
        campaign.started_at = now
    session.flush()
    return state_counts(session, campaign_id=campaign.id)


def queue_campaign(session: Session, *, campaign: Campaign, batch_size: int = BATCH_SIZE) -> list[list[int]]:
    """Move planned sends to queued; returns the batches of send ids to hand to the queue."""
    ids = list(
        session.scalars(
            select(Send.id)
            .where(Send.campaign_id == campaign.id, Send.state == SendState.PLANNED.value)
            .order_by(Send.id)
        )
    )
    for chunk in chunks(ids, 1000):
        session.execute(
            update(Send)
            .where(Send.id.in_(chunk), Send.state == SendState.PLANNED.value)
            .values(state=SendState.QUEUED.value, updated_at=_now())
        )
    session.flush()
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]


def queued_batches(session: Session, *, campaign_id: int, batch_size: int = BATCH_SIZE) -> list[list[int]]:
    """The queued sends of one campaign as batches, to enqueue again after a resume."""
    ids = list(session.scalars(
        select(Send.id).where(Send.campaign_id == campaign_id, Send.state == SendState.QUEUED.value).order_by(Send.id)
    ))
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
