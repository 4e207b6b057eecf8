"""Planning a campaign into sends (eligibility checked, skips recorded) and queueing them in batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import case, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sendwell.campaigns.service import CampaignError, topic_slug
from sendwell.config import Settings
from sendwell.db.models import Campaign, CampaignStatus, Contact, Send, SendState
from sendwell.delivery.claims import BATCH_SIZE, chunks
from sendwell.delivery.progress import state_counts
from sendwell.delivery.warmup import hold_for_warm_up
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


@dataclass
class SendPlan:
    """What sending a campaign would do now: who gets it now or later, who is skipped and why."""

    campaign_id: int
    as_of: datetime
    contacts: int  # the segment's contacts: one send each, planned, deferred or skipped
    now: int  # would be queued at once
    deferred: dict[str, int]  # reason (send_window, frequency_cap, warm_up) → count; they go out later
    skipped: dict[str, int]  # skip reason → count; they never get this campaign
    by_region: dict[str, int]  # recipients (now and later) per region
    by_language: dict[str, int]
    reachable: int | None = None  # the segment page's count: not suppressed, with a lawful basis
    findings: list[dict[str, Any]] = field(default_factory=list)  # compliance lint and sender-domain gate

    @property
    def recipients(self) -> int:
        """Everyone the campaign would reach, at once or after a deferral."""
        return self.now + sum(self.deferred.values())

    @property
    def blocked(self) -> bool:
        """True when a blocking finding would refuse the send."""
        return any(f["severity"] == "error" for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "as_of": self.as_of.isoformat(), "blocked": self.blocked,
                "contacts": self.contacts, "reachable": self.reachable, "recipients": self.recipients,
                "now": self.now, "deferred": self.deferred, "skipped": self.skipped,
                "skipped_total": sum(self.skipped.values()), "by_region": self.by_region,
                "by_language": self.by_language, "findings": self.findings}


def preview_plan(session: Session, *, campaign: Campaign, settings: Settings, now: datetime | None = None) -> SendPlan:
    """Plan the campaign inside a savepoint, count the outcome and roll it back: nothing is written.

    The real planner runs, so the numbers are exactly what a send now would record; the
    warm-up hold a worker applies when it claims the sends is run on them too, so mail over
    today's allowance shows as deferred by warm-up. Sequence values used by the rolled-back
    rows are not given back (PostgreSQL sequences are not transactional); nothing else stays.
    """
    now = now or _now()
    savepoint = session.begin_nested()
    try:
        plan_campaign(session, campaign=campaign, now=now, settings=settings)
        planned = list(session.scalars(select(Send.id).where(
            Send.campaign_id == campaign.id, Send.state == SendState.PLANNED.value)))
        hold_for_warm_up(session, campaign=campaign, policy=FrequencyPolicy.from_json(campaign.policy), now=now,
                         send_ids=planned)
        plan = _count_plan(session, campaign_id=campaign.id, now=now)
    finally:
        savepoint.rollback()
    return plan


def _count_plan(session: Session, *, campaign_id: int, now: datetime) -> SendPlan:
    by_reason = session.execute(
        select(Send.state, Send.skip_reason, func.count()).where(Send.campaign_id == campaign_id)
        .group_by(Send.state, Send.skip_reason)).all()
    going = (SendState.PLANNED.value, SendState.QUEUED.value, SendState.DEFERRED.value)

    def recipients_by(column: Any) -> dict[str, int]:
        rows = session.execute(
            select(column, func.count()).select_from(Send).join(Contact, Contact.id == Send.contact_id)
            .where(Send.campaign_id == campaign_id, Send.state.in_(going)).group_by(column)).all()
        return {value or "": count for value, count in sorted(rows, key=lambda r: (-r[1], r[0] or ""))}

    deferred: dict[str, int] = {}
    skipped: dict[str, int] = {}
    count_now = 0
    for state, reason, count in by_reason:
        if state == SendState.DEFERRED.value:
            deferred[reason or "retry"] = deferred.get(reason or "retry", 0) + count
        elif state == SendState.SKIPPED.value:
            skipped[reason] = count
        elif state in going:
            count_now += count
    return SendPlan(campaign_id=campaign_id, as_of=now, contacts=sum(r[2] for r in by_reason), now=count_now,
                    deferred=dict(sorted(deferred.items(), key=lambda kv: -kv[1])),
                    skipped=dict(sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
                    by_region=recipients_by(Contact.region), by_language=recipients_by(Contact.language))


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
