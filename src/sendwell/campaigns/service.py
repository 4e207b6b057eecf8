"""The campaign's own use cases: create, update, schedule, status changes and listings."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.contacts.records import ensure_topic
from sendwell.content.render import CompiledCampaign
from sendwell.db.models import ArchivedCampaign, Campaign, CampaignKind, CampaignStatus, Send, SendState, Topic
from sendwell.db.models import Sequence, SequenceStepCampaign, TransactionalConfirmation
from sendwell.policy.caps import OVER_CAP_MODES
from sendwell.segments.expression import compile_segment
from sendwell.segments.service import expand_references


class CampaignError(ValueError):
    """The campaign cannot be created or changed as asked."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def create_campaign(
    session: Session,
    *,
    settings: Settings,
    name: str,
    subject: str,
    html: str,
    text: str = "",
    segment: str = "",
    topic: str | None = None,
    kind: str = CampaignKind.MARKETING.value,
    over_cap: str = "skip",
) -> Campaign:
    """Validate and store a draft campaign."""
    if over_cap not in OVER_CAP_MODES:
        raise CampaignError(f"unknown over-cap handling {over_cap!r} (use skip or defer)")
    segment = expand_references(session, segment)  # `@'saved name'` → the saved rule, kept as a copy
    _check_campaign(settings, name=name, subject=subject, html=html, text=text, segment=segment, kind=kind)
    campaign = Campaign(
        name=name.strip(), subject=subject, html=html, text=text, segment_expr=segment, kind=kind, over_cap=over_cap,
        topic_id=ensure_topic(session, slug=topic).id if topic else None,
    )
    session.add(campaign)
    session.flush()
    return campaign


def _check_campaign(settings: Settings, *, name: str, subject: str, html: str, text: str, segment: str,
                    kind: str) -> None:
    """What create and update both refuse: unknown kind, no name or subject, a bad segment or template."""
    if kind not in {k.value for k in CampaignKind}:
        raise CampaignError(f"unknown campaign kind {kind!r} (use one of {', '.join(k.value for k in CampaignKind)})")
    if not name.strip():
        raise CampaignError("the campaign needs a name")
    if not subject.strip():
        raise CampaignError("the campaign needs a subject")
    compile_segment(segment)  # SegmentError names the field or token at fault
    CompiledCampaign(subject=subject, html=html, text=text, settings=settings, kind=kind)  # TemplateError


def update_campaign(
    session: Session,
    *,
    settings: Settings,
    campaign_id: int,
    name: str,
    subject: str,
    html: str,
    text: str = "",
    segment: str = "",
    topic: str | None = None,
    kind: str = CampaignKind.MARKETING.value,
) -> Campaign:
    """Change a draft campaign's content and audience, with the same checks as create_campaign."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    if campaign.status != CampaignStatus.DRAFT.value:
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}: only a draft can be changed")
    segment = expand_references(session, segment)  # `@'saved name'` → the saved rule, kept as a copy
    _check_campaign(settings, name=name, subject=subject, html=html, text=text, segment=segment, kind=kind)
    def same(new: str, old: str) -> bool:  # a browser's form sends CRLF line ends
        return new.replace("\r\n", "\n") == old.replace("\r\n", "\n")

    if not all(same(new, old) for new, old in ((subject, campaign.subject), (html, campaign.html),
                                               (text, campaign.text), (segment, campaign.segment_expr),
                                               (kind, campaign.kind))):
        # The admin confirmed what they read: other content or audience needs a new confirmation.
        session.execute(delete(TransactionalConfirmation).where(TransactionalConfirmation.campaign_id == campaign_id))
    campaign.name, campaign.subject, campaign.html, campaign.text = name.strip(), subject, html, text
    campaign.segment_expr, campaign.kind = segment, kind
    campaign.topic_id = ensure_topic(session, slug=topic).id if topic else None
    session.flush()
    return campaign


def schedule_campaign(session: Session, *, campaign_id: int, at: datetime, now: datetime | None = None) -> Campaign:
    """Give a draft a start time (status `scheduled`); the worker's scan starts it when due.

    Call it through flows.schedule_sending, which runs the blocking compliance lint first.
    A scheduled campaign cannot be edited: unschedule it, change it, schedule it again.
    """
    campaign = get_campaign(session, campaign_id=campaign_id)
    if campaign.status != CampaignStatus.DRAFT.value:
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}: only a draft can be scheduled")
    if at.tzinfo is None:
        raise CampaignError("at: the start time needs a time zone (for example 2026-12-01T09:00:00+08:00)")
    try:
        utc = at.astimezone(timezone.utc)
    except OverflowError:
        raise CampaignError(f"at: {at.isoformat()} is out of range") from None
    if utc <= (now or _now()):
        raise CampaignError(f"at: {at.isoformat()} is not in the future; send the campaign now instead")
    at = utc
    campaign.status, campaign.scheduled_at = CampaignStatus.SCHEDULED.value, at
    session.flush()
    return campaign


def due_scheduled(session: Session, *, now: datetime | None = None) -> list[int]:
    """Scheduled campaigns whose start time has come, earliest first."""
    return list(session.scalars(
        select(Campaign.id)
        .where(Campaign.status == CampaignStatus.SCHEDULED.value, Campaign.scheduled_at <= (now or _now()))
        .order_by(Campaign.scheduled_at, Campaign.id)
    ))


def claim_scheduled(session: Session, *, campaign_id: int) -> bool:
    """Turn a due scheduled campaign back into a draft for start_sending, if nobody else did.

    One conditional UPDATE, so when several workers scan at once exactly one starts it (on
    PostgreSQL the others wait for its row lock and then match nothing).
    """
    done = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SCHEDULED.value)
        .values(status=CampaignStatus.DRAFT.value)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return bool(done.rowcount)


def get_campaign(session: Session, *, campaign_id: int) -> Campaign:
    """The campaign with this id; CampaignError when there is none."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign with id {campaign_id}")
    return campaign


def topic_slug(session: Session, campaign: Campaign) -> str | None:
    """The slug of the campaign's topic, or None when it goes to everyone in its segment."""
    if campaign.topic_id is None:
        return None
    return session.scalar(select(Topic.slug).where(Topic.id == campaign.topic_id))


def set_campaign_status(session: Session, *, campaign_id: int, action: str) -> Campaign:
    """Pause, resume, unschedule or cancel a campaign."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    allowed = {
        "pause": ({CampaignStatus.SENDING.value}, CampaignStatus.PAUSED.value),
        "resume": ({CampaignStatus.PAUSED.value}, CampaignStatus.SENDING.value),
        "unschedule": ({CampaignStatus.SCHEDULED.value}, CampaignStatus.DRAFT.value),
        "cancel": ({CampaignStatus.DRAFT.value, CampaignStatus.SCHEDULED.value, CampaignStatus.SENDING.value,
                    CampaignStatus.PAUSED.value}, CampaignStatus.CANCELLED.value),
    }
    sources, target = allowed[action]
    if campaign.status not in sources:
        raise CampaignError(f"cannot {action} campaign {campaign_id}: it is {campaign.status}")
    campaign.status = target
    if action in ("unschedule", "cancel"):
        campaign.scheduled_at = None
    if action == "cancel":
        session.execute(
            update(Send)
            .where(Send.campaign_id == campaign_id,
                   Send.state.in_([SendState.PLANNED.value, SendState.QUEUED.value, SendState.DEFERRED.value]))
            .values(state=SendState.SKIPPED.value, skip_reason="cancelled", updated_at=_now())
        )
    session.flush()
    return campaign


def clone_campaign(session: Session, *, campaign_id: int, name: str | None = None) -> Campaign:
    """A new draft with the campaign's content, audience and settings ("Copy of …"); no sends, no figures."""
    source = get_campaign(session, campaign_id=campaign_id)
    copy = Campaign(
        name=(name or f"Copy of {source.name}").strip()[:200], subject=source.subject, html=source.html,
        text=source.text, segment_expr=source.segment_expr, topic_id=source.topic_id, kind=source.kind,
        over_cap=source.over_cap,
    )
    session.add(copy)
    session.flush()
    return copy


def rename_campaign(session: Session, *, campaign_id: int, name: str) -> Campaign:
    """Give a campaign, in any status, a new name (only the admin and reports show it)."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    if not name.strip():
        raise CampaignError("the campaign needs a name")
    campaign.name = name.strip()[:200]
    session.flush()
    return campaign


def delete_campaign(session: Session, *, campaign_id: int) -> None:
    """Delete a draft that never sent; anything that sent stays (archive it instead)."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    has_sends = session.scalar(select(Send.id).where(Send.campaign_id == campaign_id).limit(1)) is not None
    if campaign.status != CampaignStatus.DRAFT.value or has_sends:
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}: only a draft can be deleted; "
                            "archive a finished or cancelled campaign instead")
    session.delete(campaign)
    session.flush()


def archive_campaign(session: Session, *, campaign_id: int, archived: bool = True) -> Campaign:
    """Set a finished or cancelled campaign aside (or back): its sends and report stay as they are."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    if campaign.status not in (CampaignStatus.FINISHED.value, CampaignStatus.CANCELLED.value):
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}: only a finished or cancelled "
                            "campaign can be archived")
    entry = session.get(ArchivedCampaign, campaign_id)
    if archived and entry is None:
        session.add(ArchivedCampaign(campaign_id=campaign_id, archived_at=_now()))
    elif not archived and entry is not None:
        session.delete(entry)
    session.flush()
    return campaign


def is_archived(session: Session, *, campaign_id: int) -> bool:
    """Whether the campaign was set aside with archive_campaign."""
    return session.get(ArchivedCampaign, campaign_id) is not None


def confirm_transactional(session: Session, *, campaign_id: int, email: str, role: str) -> TransactionalConfirmation:
    """An admin confirms a draft labelled transactional is transactional; their email and the time are kept."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    if role != "admin":
        raise CampaignError(f"only an admin can confirm a campaign is transactional ({email} is {role})")
    if campaign.kind != CampaignKind.TRANSACTIONAL.value:
        raise CampaignError(f"campaign {campaign_id} is {campaign.kind}, not transactional: nothing to confirm")
    if campaign.status != CampaignStatus.DRAFT.value:
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}: only a draft can be confirmed")
    confirmation = session.get(TransactionalConfirmation, campaign_id) or TransactionalConfirmation(
        campaign_id=campaign_id, confirmed_by=email)
    confirmation.confirmed_by, confirmation.confirmed_at = email, _now()
    session.add(confirmation)
    session.flush()
    return confirmation


def transactional_confirmation(session: Session, *, campaign_id: int) -> TransactionalConfirmation | None:
    """Who confirmed the campaign is transactional, and when; None if nobody has (or the content changed since)."""
    return session.get(TransactionalConfirmation, campaign_id)


def _not_a_step() -> ColumnElement[bool]:
    """Not the campaign of a sequence's mail step: those carry a step's sends, nobody edits or sends them."""
    return ~select(SequenceStepCampaign.id).where(SequenceStepCampaign.campaign_id == Campaign.id).exists()


def recent_campaigns(session: Session, *, archived: bool = False, include_sequences: bool = False,
                     limit: int = 200) -> list[Campaign]:
    """The newest campaigns, archived ones only or all but those; sequence steps' only when asked."""
    is_set_aside = select(ArchivedCampaign.campaign_id).where(ArchivedCampaign.campaign_id == Campaign.id).exists()
    query = select(Campaign).where(is_set_aside if archived else ~is_set_aside)
    if not include_sequences:
        query = query.where(_not_a_step())
    return list(session.scalars(query.order_by(Campaign.id.desc()).limit(limit)))


def list_campaigns(session: Session, *, after: int = 0, limit: int = 50,
                   include_sequences: bool = False) -> list[Campaign]:
    """Campaigns in id order after a cursor; sequence steps' only when asked."""
    query = select(Campaign).where(Campaign.id > after)
    if not include_sequences:
        query = query.where(_not_a_step())
    return list(session.scalars(query.order_by(Campaign.id).limit(limit)))


def sequence_steps(session: Session, *, campaign_ids: list[int]) -> dict[int, dict[str, int | str]]:
    """For the campaigns that carry a sequence's mail step: {campaign id: {sequence_id, sequence, step}}."""
    rows = session.execute(
        select(SequenceStepCampaign.campaign_id, Sequence.id, Sequence.name, SequenceStepCampaign.step_id)
        .join(Sequence, Sequence.id == SequenceStepCampaign.sequence_id)
        .where(SequenceStepCampaign.campaign_id.in_(campaign_ids)))
    return {campaign_id: {"sequence_id": sequence_id, "sequence": name, "step": step}
            for campaign_id, sequence_id, name, step in rows}
