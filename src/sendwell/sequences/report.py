"""Who and how: the dry run, the summary and the per-step report of a sequence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from sendwell.db.models import (
    Alert,
    Campaign,
    CampaignStatus,
    Contact,
    Event,
    Send,
    SendState,
    Sequence,
    SequenceEnrollment,
    SequenceStepCampaign,
    SequenceStepRun,
)
from sendwell.sequences.base import definition_of, get_sequence, now_utc
from sendwell.sequences.enrolment import enrol, scan
from sendwell.sequences.steps import SPIKES


def dry_run(session: Session, *, sequence_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Who would enter now (the trigger's contacts since the last scan, as the re-entry rule allows); writes nothing."""
    now = now or now_utc()
    sequence = get_sequence(session, sequence_id=sequence_id)
    savepoint = session.begin_nested()
    try:
        entered = enrol(session, sequence=sequence, contact_ids=scan(session, sequence=sequence, now=now,
                                                                     dry_run=True), now=now)
        emails = dict(session.execute(select(Contact.id, Contact.email).where(Contact.id.in_(entered[:1000]))).all())
    finally:
        savepoint.rollback()
    return {"id": sequence_id, "as_of": now.isoformat(), "would_enter": len(entered),
            "contacts": [{"id": i, "email": emails.get(i, "")} for i in entered[:1000]]}


def describe(session: Session, sequence: Sequence) -> dict[str, Any]:
    counts = dict(session.execute(select(SequenceEnrollment.state, func.count()).where(
        SequenceEnrollment.sequence_id == sequence.id).group_by(SequenceEnrollment.state)).all())
    return {"id": sequence.id, "name": sequence.name, "status": sequence.status, "version": sequence.version,
            "trigger": sequence.definition.get("trigger"), "enrollments": counts}


REPORT_KINDS = ("opened", "clicked", "replied", "unsubscribed", "complained", "bounced")


def step_report(session: Session, *, sequence_id: int) -> dict[str, Any]:
    """Per step: runs; for mail steps sent, opened, clicked, replied, unsubscribed, complained, bounced and rates."""
    sequence = get_sequence(session, sequence_id=sequence_id)
    definition = definition_of(sequence)
    runs = dict(session.execute(
        select(SequenceStepRun.step_id, func.count()).join(SequenceEnrollment,
                                                           SequenceEnrollment.id == SequenceStepRun.enrollment_id)
        .where(SequenceEnrollment.sequence_id == sequence_id).group_by(SequenceStepRun.step_id)).all())
    waiting = dict(session.execute(
        select(SequenceStepRun.step_id, func.count()).join(SequenceEnrollment,
                                                           SequenceEnrollment.id == SequenceStepRun.enrollment_id)
        .where(SequenceEnrollment.sequence_id == sequence_id, SequenceStepRun.wait_reason != "")
        .group_by(SequenceStepRun.step_id)).all())
    steps = []
    for step in definition.steps:
        row: dict[str, Any] = {"id": step["id"], "kind": step["kind"], "runs": runs.get(step["id"], 0),
                               "waited": waiting.get(step["id"], 0)}
        if step["kind"] == "mail":
            campaigns = select(SequenceStepCampaign.campaign_id).where(
                SequenceStepCampaign.sequence_id == sequence_id, SequenceStepCampaign.step_id == step["id"])
            statuses = list(session.scalars(select(Campaign.status).where(Campaign.id.in_(campaigns))))
            sent = session.scalar(select(func.count()).select_from(Send).where(
                Send.campaign_id.in_(campaigns), Send.state == SendState.SENT.value)) or 0
            by_kind = dict(session.execute(
                select(Event.kind, func.count(func.distinct(Event.contact_id))).where(
                    Event.campaign_id.in_(campaigns), Event.kind.in_(REPORT_KINDS),
                    or_(Event.machine.is_(False), Event.kind.not_in(("opened", "clicked"))))
                .group_by(Event.kind)).all())
            row.update(paused=CampaignStatus.PAUSED.value in statuses, sent=sent,
                       alert=_step_alert(session, campaigns))
            for kind in REPORT_KINDS:
                row[kind] = by_kind.get(kind, 0)
                row[f"{kind}_rate"] = round(by_kind.get(kind, 0) / sent, 4) if sent else None
        steps.append(row)
    return {**describe(session, sequence), "steps": steps}


ALERT_KINDS = (*SPIKES, "hard_bounce_spike")  # insight.alerts' spike kinds; SPIKES pause a step at critical


def _step_alert(session: Session, campaigns: Any) -> dict[str, Any] | None:
    """The step's open spike alert, critical before warning and then the newest: what paused it, or warns."""
    alert = session.scalars(select(Alert).where(
        Alert.campaign_id.in_(campaigns), Alert.kind.in_(ALERT_KINDS), Alert.resolved_at.is_(None))
        .order_by((Alert.severity == "critical").desc(), Alert.id.desc()).limit(1)).first()
    if alert is None:
        return None
    data = alert.data or {}
    return {"id": alert.id, "kind": alert.kind, "severity": alert.severity, "created_at": alert.created_at.isoformat(),
            "pauses_step": alert.severity == "critical" and alert.kind in SPIKES, "message": alert.message,
            "template": data.get("template"), "params": data.get("params")}


def due_campaigns(session: Session, *, sequence_id: int) -> list[int]:
    """The hidden campaigns of a sequence's mail steps."""
    return list(session.scalars(select(SequenceStepCampaign.campaign_id)
                                .where(SequenceStepCampaign.sequence_id == sequence_id)
                                .order_by(SequenceStepCampaign.id)))


def enrollments(session: Session, *, sequence_id: int) -> list[SequenceEnrollment]:
    return list(session.scalars(select(SequenceEnrollment).where(SequenceEnrollment.sequence_id == sequence_id)
                                .order_by(SequenceEnrollment.id)))


def step_runs(session: Session, *, sequence_id: int) -> list[SequenceStepRun]:
    return list(session.scalars(select(SequenceStepRun).join(
        SequenceEnrollment, SequenceEnrollment.id == SequenceStepRun.enrollment_id)
        .where(SequenceEnrollment.sequence_id == sequence_id).order_by(SequenceStepRun.id)))

