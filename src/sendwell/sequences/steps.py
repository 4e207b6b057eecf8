"""The step runners: mail, wait, branch, set and notify, each in bulk for every enrollment due at one step."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, literal, select, true, update
from sqlalchemy.orm import Session, aliased

from sendwell.campaigns.service import create_campaign, topic_slug
from sendwell.config import Settings
from sendwell.db.models import (
    Alert,
    Campaign,
    CampaignStatus,
    Contact,
    Event,
    MailTemplate,
    Send,
    SendState,
    Sequence,
    SequenceEnrollment,
    SequenceStepCampaign,
    SequenceStepRun,
)
from sendwell.delivery.planning import queue_campaign
from sendwell.policy.caps import FrequencyPolicy
from sendwell.policy.eligibility import skip_reason
from sendwell.policy.service import defer_outside_window, defer_over_cap
from sendwell.policy.windows import zone_for
from sendwell.segments.expression import compile_segment
from sendwell.sequences.base import ACTIVE, DONE, SequenceError, definition_of, insert_for, now_utc
from sendwell.sequences.definition import Definition, parse_until, wait_delta
from sendwell.sequences.gate import SENDER_DOMAIN, LazyGate
from sendwell.sequences.notify import queue_notifications

STEP_PAUSED = "step_paused"  # an enrollment waits: its mail step's spike alert paused the step
METHOD = "sequence"  # the `method` of events a set step records


def step_campaign(session: Session, *, settings: Settings, sequence: Sequence, step_id: str, round_: int) -> int:
    """The hidden campaign carrying one mail step's sends (made on first use), reopened to `sending`.

    Kind marketing, over-cap `defer`: over a stage cap the mail waits for the next allowed
    time instead of being skipped. A spike alert pauses it, which pauses only this step.
    """
    found = session.scalar(select(SequenceStepCampaign.campaign_id).where(
        SequenceStepCampaign.sequence_id == sequence.id, SequenceStepCampaign.version == sequence.version,
        SequenceStepCampaign.step_id == step_id, SequenceStepCampaign.round == round_))
    if found is None:
        step = definition_of(sequence).step(step_id)
        subject, html = step.get("subject", ""), step.get("html", "")
        if step.get("template_id"):
            template = session.get(MailTemplate, step["template_id"])
            if template is None:
                raise SequenceError(f"{step_id}: no saved template {step['template_id']}")
            subject, html = subject or template.subject, html or template.html
        name = f"{sequence.name} · {step_id}" + (f" · v{sequence.version}" if sequence.version > 1 else "")
        campaign = create_campaign(
            session, settings=settings, name=name + (f" · {round_}" if round_ > 1 else ""),
            subject=subject, html=html, text=step.get("text", ""), topic=step.get("topic"), over_cap="defer")
        campaign.policy = FrequencyPolicy.from_settings(settings).to_json()
        campaign.status, campaign.started_at = CampaignStatus.SENDING.value, now_utc()
        session.add(SequenceStepCampaign(sequence_id=sequence.id, version=sequence.version, step_id=step_id,
                                         round=round_, campaign_id=campaign.id))
        session.flush()
        return campaign.id
    campaign = session.get(Campaign, found)
    assert campaign is not None
    if campaign.status == CampaignStatus.FINISHED.value:  # its earlier mails all went: more come now
        campaign.status, campaign.finished_at = CampaignStatus.SENDING.value, None
        campaign.delivered_rolled_up_at = None  # the insight roll-up counts its deliveries again (replacing)
    return found


def _record_runs(session: Session, due: Any, *, step_id: str, kind: str, outcome: Any, now: datetime,
                 send_id: Any = None, wait_reason: Any = None, join: Any = None) -> None:
    """One step-run row per due enrollment; an existing (enrollment, step) row is kept (done once)."""
    e = SequenceEnrollment
    columns = [e.id, literal(step_id), literal(kind), outcome,
               send_id if send_id is not None else literal(None), wait_reason if wait_reason is not None else literal(""),
               literal(now)]
    source: Select[Any] = select(*columns).select_from(e)
    if join is not None:
        source = join(source)
    source = source.where(due, true())
    stmt = insert_for(session)(SequenceStepRun).from_select(
        ["enrollment_id", "step_id", "kind", "outcome", "send_id", "wait_reason", "done_at"], source
    ).on_conflict_do_nothing(index_elements=["enrollment_id", "step_id"])
    session.execute(stmt)


def _move(session: Session, due: Any, *, next_step: Any, now: datetime, next_at: Any = None,
          wait_reason: Any = "") -> int:
    """Move the due enrollments to the next step (or done when it is "")."""
    e = SequenceEnrollment
    # Past the last step the pass is done, unless its last mail still waits (a cap, a window):
    # it stays active until then, so an exit rule can still stop that mail (see _finish).
    state: Any = ACTIVE
    if next_step == "":
        state = DONE if next_at is None or isinstance(next_at, datetime) else case((next_at <= now, DONE),
                                                                                    else_=ACTIVE)
    values: dict[str, Any] = {"step_id": next_step, "state": state, "updated_at": now,
                              "next_at": next_at if next_at is not None else now, "wait_reason": wait_reason}
    return session.execute(update(e).where(due).values(**values)
                           .execution_options(synchronize_session=False)).rowcount or 0


def _wait_step(session: Session, *, definition: Definition, step: dict[str, Any], due: Any, now: datetime) -> int:
    e = SequenceEnrollment
    following = definition.after(step["id"])
    delta = wait_delta(step)
    if delta is not None:
        return _move(session, due, next_step=following, now=now, next_at=now + delta)
    # Until a weekday and time in the contact's own time zone: one UPDATE per zone.
    weekday, hour, minute = parse_until(str(step["until"]))
    moved = 0
    zones = session.execute(select(Contact.timezone, Contact.country, Contact.region)
                            .join(e, e.contact_id == Contact.id).where(due)
                            .group_by(Contact.timezone, Contact.country, Contact.region)).all()
    for tz, country, region in zones:
        local = now.astimezone(zone_for(tz, country, region))
        days = (weekday - local.weekday()) % 7
        target = local.replace(hour=hour, minute=minute, second=0, microsecond=0) + timedelta(days=days)
        if target <= local:
            target += timedelta(days=7)
        in_zone = select(Contact.id).where(Contact.timezone == tz, Contact.country == country,
                                           Contact.region == region)
        moved += _move(session, and_(due, e.contact_id.in_(in_zone)), next_step=following, now=now,
                       next_at=target.astimezone(timezone.utc))
    return moved


def _branch_condition(session: Session, step: dict[str, Any], now: datetime) -> Any:
    """A clause over the enrollment and its contact: True takes `then`, otherwise `else`."""
    e = SequenceEnrollment
    cond = step["if"]
    key, value = next(iter(cond.items()))
    if key in ("clicked", "opened"):
        run = aliased(SequenceStepRun)
        return exists(select(Event.id).join(run, run.send_id == Event.send_id).where(
            run.enrollment_id == e.id, run.step_id == value, Event.kind == key, Event.machine.is_(False)))
    if key == "replied":
        replied = exists(select(Event.id).where(Event.contact_id == e.contact_id, Event.kind == "replied",
                                                Event.occurred_at >= e.entered_at))
        return replied if value else ~replied
    return compile_segment(value, now=now)


def _branch_step(session: Session, *, definition: Definition, step: dict[str, Any], due: Any, now: datetime) -> int:
    e = SequenceEnrollment
    condition = _branch_condition(session, step, now)
    outcome = case((condition, literal("then")), else_=literal("else"))
    _record_runs(session, due, step_id=step["id"], kind="branch", outcome=outcome, now=now,
                 join=lambda q: q.join(Contact, Contact.id == e.contact_id))
    taken = select(SequenceStepRun.outcome).where(
        SequenceStepRun.enrollment_id == e.id, SequenceStepRun.step_id == step["id"]).scalar_subquery()
    then, other = definition.target(step["id"], step.get("then")), definition.target(step["id"], step.get("else"))
    moved = _move(session, and_(due, taken == "then"), next_step=then, now=now)
    return moved + _move(session, and_(due, taken != "then"), next_step=other, now=now)


def _set_step(session: Session, *, definition: Definition, step: dict[str, Any], due: Any, now: datetime) -> int:
    """Set a stage, add a tag or set a custom field; recorded as a `contact_edited` event (method sequence)."""
    e = SequenceEnrollment
    _record_runs(session, due, step_id=step["id"], kind="set", outcome=literal("set"), now=now)
    contacts = session.scalars(select(Contact).join(e, e.contact_id == Contact.id).where(due)).all()
    for contact in contacts:
        changes: dict[str, Any] = {}
        if step.get("stage") and contact.stage != step["stage"]:
            changes["stage"] = [contact.stage, step["stage"]]
            contact.stage = step["stage"]
        if step.get("tag") and step["tag"] not in (contact.tags or []):
            changes["tags"] = [list(contact.tags or []), [*(contact.tags or []), step["tag"]]]
            contact.tags = [*(contact.tags or []), step["tag"]]
        if step.get("field") and (contact.custom or {}).get(step["field"]) != step["value"]:
            changes["custom"] = [dict(contact.custom or {}), {**(contact.custom or {}), step["field"]: step["value"]}]
            contact.custom = {**(contact.custom or {}), step["field"]: step["value"]}
        if changes:
            contact.updated_at = now
            session.add(Event(kind="contact_edited", contact_id=contact.id, method=METHOD, occurred_at=now,
                              data={"changes": changes, "step": step["id"]}))
    session.flush()
    return _move(session, due, next_step=definition.after(step["id"]), now=now)


def _notify_step(session: Session, *, sequence: Sequence, definition: Definition, step: dict[str, Any], due: Any,
                 now: datetime) -> int:
    """Queue a signed POST per due enrollment to the step's URL (the webhooks' outbox delivery), then move on."""
    e = SequenceEnrollment
    rows = session.execute(select(e.id, Contact.id, Contact.email).join(Contact, Contact.id == e.contact_id)
                           .where(due)).all()
    queue_notifications(session, sequence=sequence, step=step, rows=[(i, c, m) for i, c, m in rows], now=now)
    _record_runs(session, due, step_id=step["id"], kind="notify", outcome=literal("queued"), now=now)
    return _move(session, due, next_step=definition.after(step["id"]), now=now)


def _mail_step(session: Session, *, settings: Settings, sequence: Sequence, definition: Definition,
               step: dict[str, Any], round_: int, due: Any, now: datetime, report: dict[str, Any],
               gate: LazyGate | None) -> int:
    """Plan one send per due enrollment into the step's campaign, with the campaigns' eligibility."""
    e = SequenceEnrollment
    if gate is not None and gate.holds():  # the sender domain is not ready: the mail waits, never skipped
        session.execute(update(e).where(due).values(wait_reason=SENDER_DOMAIN)
                        .execution_options(synchronize_session=False))
        return 0
    campaign_id = step_campaign(session, settings=settings, sequence=sequence, step_id=step["id"], round_=round_)
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    if _step_paused(session, campaign):  # by its spike alert (or by hand): the step waits
        session.execute(update(e).where(due).values(wait_reason=STEP_PAUSED)
                        .execution_options(synchronize_session=False))
        return 0
    policy = FrequencyPolicy.from_json(campaign.policy)
    reason = skip_reason(campaign, topic_slug(session, campaign), now, policy=policy)
    source = select(literal(campaign.id).label("campaign_id"), Contact.id.label("contact_id"),
                    reason.label("skip_reason")).join(e, e.contact_id == Contact.id).where(due)
    sub = source.offset(0).subquery()
    state = case((sub.c.skip_reason.is_(None), SendState.PLANNED.value), else_=SendState.SKIPPED.value)
    rows = select(sub.c.campaign_id, sub.c.contact_id, state, sub.c.skip_reason, literal(0), literal(now)).where(true())
    session.execute(insert_for(session)(Send).from_select(
        ["campaign_id", "contact_id", "state", "skip_reason", "attempts", "updated_at"], rows
    ).on_conflict_do_nothing(index_elements=["contact_id", "campaign_id"]))
    defer_over_cap(session, campaign=campaign, policy=policy, now=now)
    defer_outside_window(session, campaign=campaign, policy=policy, now=now)
    for batch in queue_campaign(session, campaign=campaign, batch_size=settings.batch_size):
        report["batches"].append((campaign.id, batch))
    send = aliased(Send)
    joined = and_(send.campaign_id == campaign.id, send.contact_id == e.contact_id)
    waiting = case((send.state == SendState.DEFERRED.value, func.coalesce(send.skip_reason, "")), else_="")
    _record_runs(session, due, step_id=step["id"], kind="mail",
                 outcome=case((send.state == SendState.SKIPPED.value, "skipped:" + func.coalesce(send.skip_reason, "")),
                              else_=send.state),
                 now=now, send_id=send.id, wait_reason=waiting, join=lambda q: q.join(send, joined))
    # A deferred mail (stage cap, send window) holds the enrollment until its time, so a
    # following wait counts from when the mail may go; the reason is kept on the enrollment.
    mine = select(Send.retry_at, Send.skip_reason, Send.state).where(
        Send.campaign_id == campaign.id, Send.contact_id == e.contact_id).correlate(e)
    retry_at = mine.with_only_columns(Send.retry_at).where(Send.state == SendState.DEFERRED.value).scalar_subquery()
    why = mine.with_only_columns(Send.skip_reason).where(Send.state == SendState.DEFERRED.value).scalar_subquery()
    return _move(session, due, next_step=definition.after(step["id"]), now=now,
                 next_at=func.coalesce(retry_at, literal(now)), wait_reason=func.coalesce(why, ""))


SPIKES = ("unsubscribe_spike", "complaint_spike")  # insight.alerts' kinds for the thresholds it judges


def _open_spikes(campaign_id: int) -> Any:
    return select(Alert.id).where(Alert.campaign_id == campaign_id, Alert.severity == "critical",
                                  Alert.kind.in_(SPIKES), Alert.resolved_at.is_(None))


def _step_paused(session: Session, campaign: Campaign) -> bool:
    """A step is paused when its campaign is, or when insight.alerts judged its rates critical.

    The breaker pauses a campaign only while it is sending; a step's campaign finishes
    between arrivals, so an open critical unsubscribe or complaint alert pauses it here.
    """
    if campaign.status != CampaignStatus.SENDING.value:
        return True
    if session.scalar(_open_spikes(campaign.id).limit(1)) is not None:
        campaign.status = CampaignStatus.PAUSED.value
        return True
    return False


def resume_step(session: Session, *, sequence_id: int, step_id: str, now: datetime | None = None) -> list[int]:
    """Resume a paused mail step: its open spike alerts are resolved and its campaigns send again."""
    ids = list(dict.fromkeys(session.scalars(select(SequenceStepCampaign.campaign_id).where(  # versions share some
        SequenceStepCampaign.sequence_id == sequence_id, SequenceStepCampaign.step_id == step_id))))
    if not ids:
        raise SequenceError(f"sequence {sequence_id} has no mail step {step_id!r} that ran")
    for campaign_id in ids:
        session.execute(update(Alert).where(Alert.id.in_(_open_spikes(campaign_id)))
                        .values(resolved_at=now or now_utc()).execution_options(synchronize_session=False))
        session.execute(update(Campaign).where(Campaign.id == campaign_id,
                                               Campaign.status == CampaignStatus.PAUSED.value)
                        .values(status=CampaignStatus.SENDING.value).execution_options(synchronize_session=False))
    session.expire_all()
    return ids


def run_step(session: Session, *, settings: Settings, sequence: Sequence, definition: Definition, version: int,
             step_id: str, round_: int, due: Any, now: datetime, report: dict[str, Any],
             gate: LazyGate | None = None) -> int:
    """Do one step for every enrollment due at it; returns how many moved on."""
    if version != sequence.version or step_id not in {s["id"] for s in definition.steps}:
        # Not placed on the current version (update_sequence places every active one): they finish.
        return _move(session, due, next_step="", now=now)
    # A step done before an edit moved it later in the order is not done again: each step once.
    done = exists(select(SequenceStepRun.id).where(SequenceStepRun.enrollment_id == SequenceEnrollment.id,
                                                   SequenceStepRun.step_id == step_id))
    passed = _move(session, and_(due, done), next_step=definition.after(step_id), now=now)  # off this step now
    step = definition.step(step_id)
    kind = step["kind"]
    if kind == "mail":
        moved = _mail_step(session, settings=settings, sequence=sequence, definition=definition, step=step,
                           round_=round_, due=due, now=now, report=report, gate=gate)
    elif kind == "wait":
        _record_runs(session, due, step_id=step_id, kind=kind, outcome=literal("waited"), now=now)
        moved = _wait_step(session, definition=definition, step=step, due=due, now=now)
    elif kind == "branch":
        moved = _branch_step(session, definition=definition, step=step, due=due, now=now)
    elif kind == "notify":
        moved = _notify_step(session, sequence=sequence, definition=definition, step=step, due=due, now=now)
    else:
        moved = _set_step(session, definition=definition, step=step, due=due, now=now)
    report["steps"][step_id] += moved
    return moved + passed

