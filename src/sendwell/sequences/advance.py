"""Advancing: enrol, apply the exit rules and run every due step, under the planning lock."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.db.models import (
    SCOPE_ALL,
    Contact,
    Event,
    Send,
    SendState,
    Sequence,
    SequenceEnrollment,
    SequenceStepCampaign,
    Suppression,
    SuppressionReason,
)
from sendwell.db.session import transaction
from sendwell.policy.service import lock_planning
from sendwell.segments.expression import compile_segment
from sendwell.sequences.base import ACTIVE, DONE, EXITED, SKIP_EXITED, definition_of, now_utc
from sendwell.sequences.enrolment import scan
from sendwell.sequences.gate import LazyGate
from sendwell.sequences.steps import run_step


def apply_exits(session: Session, *, sequence: Sequence, now: datetime) -> dict[str, int]:
    """End active enrollments an exit rule matches: suppressed or unsubscribed (always), then the configured ones."""
    definition = definition_of(sequence)
    e = SequenceEnrollment
    rules: list[tuple[str, Any]] = [
        ("unsubscribed", exists(select(Suppression.id).where(
            Suppression.email_hash == Contact.email_hash, Suppression.scope == SCOPE_ALL,
            Suppression.reason == SuppressionReason.UNSUBSCRIBE.value))),
        ("suppressed", exists(select(Suppression.id).where(
            Suppression.email_hash == Contact.email_hash, Suppression.scope == SCOPE_ALL))),
    ]
    if definition.exit.get("replied"):
        rules.append(("replied", exists(select(Event.id).where(
            Event.contact_id == e.contact_id, Event.kind == "replied", Event.occurred_at >= e.entered_at))))
    if definition.exit.get("stage_left"):
        rules.append(("stage_left", Contact.stage != definition.exit["stage_left"]))
    if definition.exit.get("goal"):
        rules.append(("goal_reached", compile_segment(definition.exit["goal"], now=now)))
    counts: dict[str, int] = {}
    campaigns = select(SequenceStepCampaign.campaign_id).where(SequenceStepCampaign.sequence_id == sequence.id)
    for reason, clause in rules:
        leaving = session.execute(select(e.id, e.contact_id).join(Contact, Contact.id == e.contact_id).where(
            e.sequence_id == sequence.id, e.state == ACTIVE, clause)).all()
        for start in range(0, len(leaving), 5000):
            chunk = leaving[start:start + 5000]
            session.execute(update(e).where(e.id.in_([i for i, _ in chunk])).values(
                state=EXITED, exited_reason=reason, next_at=None, updated_at=now)
                .execution_options(synchronize_session=False))
            # Their mails not yet sent (waiting for a cap or a window, or queued) are not sent.
            session.execute(update(Send).where(
                Send.campaign_id.in_(campaigns), Send.contact_id.in_([c for _, c in chunk]),
                Send.state.in_((SendState.PLANNED.value, SendState.QUEUED.value, SendState.DEFERRED.value)))
                .values(state=SendState.SKIPPED.value, skip_reason=SKIP_EXITED, lease_until=None, updated_at=now)
                .execution_options(synchronize_session=False))
        if leaving:
            counts[reason] = len(leaving)
    return counts


def advance(session: Session, *, settings: Settings, now: datetime | None = None,
            sequence_ids: list[int] | None = None) -> dict[str, Any]:
    """Enrol, apply exits and run every due step of the active sequences, as of `now`.

    Returns counts and `batches`: (campaign id, send ids) for the queue. Runs under the
    planning lock (policy.service.lock_planning), so caps see every other plan and two
    advancing processes take turns; the unique step-run row makes a repeat a no-op.
    """
    now = now or now_utc()
    lock_planning(session)
    report: dict[str, Any] = {"entered": 0, "exited": {}, "steps": defaultdict(int), "batches": []}
    gate = LazyGate(session, settings, now)
    query = select(Sequence).where(Sequence.status == "active").order_by(Sequence.id)
    if sequence_ids is not None:
        query = query.where(Sequence.id.in_(sequence_ids))
    for sequence in list(session.scalars(query)):
        report["entered"] += len(scan(session, sequence=sequence, now=now))
        for reason, count in apply_exits(session, sequence=sequence, now=now).items():
            report["exited"][reason] = report["exited"].get(reason, 0) + count
        definition = definition_of(sequence)
        for _ in range(len(definition.steps) + 1):  # each pass moves every due enrollment one step on
            groups = session.execute(
                select(SequenceEnrollment.version, SequenceEnrollment.step_id, SequenceEnrollment.round)
                .where(*_due(sequence.id, now)).group_by(SequenceEnrollment.version, SequenceEnrollment.step_id,
                                                          SequenceEnrollment.round)).all()
            moved = 0
            for version, step_id, round_ in groups:
                due = and_(*_due(sequence.id, now), SequenceEnrollment.version == version,
                           SequenceEnrollment.step_id == step_id, SequenceEnrollment.round == round_)
                moved += run_step(session, settings=settings, sequence=sequence, definition=definition,
                                  version=version, step_id=step_id, round_=round_, due=due, now=now, report=report,
                                  gate=gate)
            if not moved:
                break
        _finish(session, sequence_id=sequence.id, now=now)
    report["steps"] = dict(report["steps"])
    session.flush()
    return report


def advance_due(factory: sessionmaker[Session], *, settings: Settings,
                now: datetime | None = None) -> list[tuple[int, list[int]]]:
    """The worker's periodic advance, in its own transaction; returns (campaign id, send ids) to enqueue."""
    with transaction(factory) as session:
        if session.scalar(select(Sequence.id).where(Sequence.status == "active").limit(1)) is None:
            return []  # no sequence: no planning lock taken
        return advance(session, settings=settings, now=now)["batches"]


def _finish(session: Session, *, sequence_id: int, now: datetime) -> None:
    """Passes past their last step whose last mail's time has come are done."""
    e = SequenceEnrollment
    session.execute(update(e).where(e.sequence_id == sequence_id, e.state == ACTIVE, e.step_id == "",
                                    e.next_at <= now).values(state=DONE, updated_at=now)
                    .execution_options(synchronize_session=False))


def _due(sequence_id: int, now: datetime) -> list[Any]:
    e = SequenceEnrollment
    return [e.sequence_id == sequence_id, e.state == ACTIVE, e.step_id != "", e.next_at <= now]
