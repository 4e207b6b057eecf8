"""Editing a sequence into a new version: contacts in flight keep their place by step id."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.content.service import assert_sendable
from sendwell.db.models import MailTemplate, Sequence, SequenceEnrollment, SequenceStepCampaign, SequenceVersion
from sendwell.policy.service import lock_planning
from sendwell.sequences.base import ACTIVE, EXITED, SequenceError, definition_of, get_sequence, now_utc
from sendwell.sequences.definition import Definition, DefinitionError, parse_definition
from sendwell.sequences.steps import step_campaign

STEP_REMOVED = "step_removed"  # exited_reason: the edit removed the contact's step and every step after it


def check_templates(session: Session, definition: Definition) -> None:
    """DefinitionError naming the mail step whose saved template does not exist."""
    for step in definition.steps:
        if step["kind"] == "mail" and step.get("template_id") and session.get(MailTemplate, step["template_id"]) is None:
            raise DefinitionError(f"{step['id']}.template_id: no saved template {step['template_id']}")


def keep_version(session: Session, *, sequence: Sequence, now: datetime) -> None:
    """Store the sequence's current definition under its version number."""
    session.add(SequenceVersion(sequence_id=sequence.id, version=sequence.version, definition=sequence.definition,
                                created_at=now))


def lint_new_mail_steps(session: Session, *, settings: Settings, sequence: Sequence, step_ids: list[str]) -> None:
    """Make the step campaigns of these mail steps (round 1) and run the campaigns' compliance lint on each."""
    for step_id in step_ids:
        campaign_id = step_campaign(session, settings=settings, sequence=sequence, step_id=step_id, round_=1)
        assert_sendable(session, settings=settings, campaign_id=campaign_id)  # ComplianceError blocks


def versions(session: Session, *, sequence_id: int) -> list[SequenceVersion]:
    """Every stored definition of a sequence, oldest first."""
    return list(session.scalars(select(SequenceVersion).where(SequenceVersion.sequence_id == sequence_id)
                                .order_by(SequenceVersion.version)))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def update_sequence(session: Session, *, settings: Settings, sequence_id: int, data: dict[str, Any],
                    now: datetime | None = None) -> Sequence:
    """Store an edited definition as the next version and move the contacts in flight onto it.

    A contact keeps its step when the new version still has that step id; otherwise it goes on
    at the next step of the old order that the new version has, or leaves with `step_removed`.
    An unchanged mail step keeps its step campaign (its report goes on); a new or changed one
    gets a campaign of the new version, checked by the compliance lint as on create.
    """
    now = now or now_utc()
    lock_planning(session)  # an advance running now finishes on the old version first
    sequence = get_sequence(session, sequence_id=sequence_id)
    old, new = definition_of(sequence), parse_definition(data)
    if session.scalar(select(Sequence.id).where(Sequence.name == new.name, Sequence.id != sequence.id)) is not None:
        raise SequenceError(f"a sequence named {new.name!r} exists")
    check_templates(session, new)
    if session.scalar(select(SequenceVersion.id).where(SequenceVersion.sequence_id == sequence.id,
                                                       SequenceVersion.version == sequence.version)) is None:
        keep_version(session, sequence=sequence, now=now)  # its definition was not kept: keep it before replacing
    before = sequence.version
    sequence.version, sequence.definition, sequence.name = before + 1, new.raw, new.name
    sequence.reentry_days, sequence.updated_at = new.reentry_days, now
    keep_version(session, sequence=sequence, now=now)
    session.flush()
    old_ids = {s["id"] for s in old.steps}
    changed = []
    for step in new.steps:
        if step["kind"] != "mail":
            continue
        if step["id"] in old_ids and _same(old.step(step["id"]), step):
            _carry_campaigns(session, sequence_id=sequence.id, step_id=step["id"], before=before)
        else:
            changed.append(step["id"])
    lint_new_mail_steps(session, settings=settings, sequence=sequence, step_ids=changed)
    _replace(session, sequence=sequence, old=old, new=new, now=now)
    session.flush()
    return sequence


def _carry_campaigns(session: Session, *, sequence_id: int, step_id: str, before: int) -> None:
    """The unchanged step's campaigns (every round) serve the new version too."""
    c = SequenceStepCampaign
    for round_, campaign_id in session.execute(select(c.round, c.campaign_id).where(
            c.sequence_id == sequence_id, c.version == before, c.step_id == step_id)).all():
        session.add(c(sequence_id=sequence_id, version=before + 1, step_id=step_id, round=round_,
                      campaign_id=campaign_id))


def _replace(session: Session, *, sequence: Sequence, old: Definition, new: Definition, now: datetime) -> None:
    """Put every active enrollment on the new version, at its step or the next one that is still there."""
    e = SequenceEnrollment
    old_order = [s["id"] for s in old.steps]
    kept = {s["id"] for s in new.steps}
    active = (e.sequence_id == sequence.id, e.state == ACTIVE)
    for i, step_id in enumerate(old_order):
        if step_id in kept:
            continue
        target = next((s for s in old_order[i + 1:] if s in kept), None)
        at_step = update(e).where(*active, e.step_id == step_id).execution_options(synchronize_session=False)
        if target is None:
            session.execute(at_step.values(state=EXITED, exited_reason=STEP_REMOVED, next_at=None, wait_reason="",
                                           version=sequence.version, updated_at=now))
        else:  # due when the removed step was: the next step takes its time
            session.execute(at_step.values(step_id=target, wait_reason="", version=sequence.version, updated_at=now))
    session.execute(update(e).where(*active, e.version != sequence.version)
                    .values(version=sequence.version, updated_at=now).execution_options(synchronize_session=False))
