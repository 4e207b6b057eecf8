"""Sequences: create, pause and resume, and edit into a new version; the public use cases are importable here.

The work is split by job: enrolment (who enters), steps (what each step does), advance (the
periodic run under the planning lock) and report (dry run and per-step counts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db.models import Contact, Event, Sequence
from sendwell.sequences.advance import advance, advance_due
from sendwell.sequences.base import SequenceError, get_sequence, now_utc
from sendwell.sequences.definition import parse_definition
from sendwell.sequences.enrolment import enrol_for_event, record_api_event
from sendwell.sequences.gate import sender_domain_findings
from sendwell.sequences.report import describe, dry_run, step_report
from sendwell.sequences.steps import resume_step
from sendwell.sequences.versions import check_templates, keep_version, lint_new_mail_steps, update_sequence

__all__ = [
    "SequenceError", "advance", "advance_due", "create_sequence", "describe", "dry_run", "enrol_for_event",
    "get_sequence", "list_sequences", "record_api_event", "resume_step", "sender_domain_findings", "set_status",
    "step_report", "update_sequence",
]
STATUSES = ("active", "paused")


def create_sequence(session: Session, *, settings: Settings, data: dict[str, Any],
                    now: datetime | None = None) -> Sequence:
    """Store a sequence; its mail steps are checked by the campaigns' template check and compliance lint.

    The enrolment scan starts after the newest event and contact: a sequence enrols what
    happens from now on, never the whole history.
    """
    definition = parse_definition(data)
    if session.scalar(select(Sequence.id).where(Sequence.name == definition.name)) is not None:
        raise SequenceError(f"a sequence named {definition.name!r} exists")
    check_templates(session, definition)
    sequence = Sequence(
        name=definition.name, status="active", version=1, definition=definition.raw,
        reentry_days=definition.reentry_days, created_at=now or now_utc(), updated_at=now or now_utc(),
        events_seen=session.scalar(select(func.max(Event.id))) or 0,
        contacts_seen=session.scalar(select(func.max(Contact.id))) or 0,
    )
    session.add(sequence)
    session.flush()
    keep_version(session, sequence=sequence, now=sequence.created_at)
    lint_new_mail_steps(session, settings=settings, sequence=sequence,
                        step_ids=[s["id"] for s in definition.steps if s["kind"] == "mail"])
    return sequence


def list_sequences(session: Session, *, after: int = 0, limit: int | None = None) -> list[Sequence]:
    """Sequences in id order, from after `after`, at most `limit` of them."""
    query = select(Sequence).where(Sequence.id > after).order_by(Sequence.id)
    return list(session.scalars(query if limit is None else query.limit(limit)))


def set_status(session: Session, *, sequence_id: int, status: str) -> Sequence:
    """Pause or resume a sequence: paused, nobody enters and no step runs (enrollments keep their place)."""
    if status not in STATUSES:
        raise SequenceError(f"unknown status {status!r}")
    sequence = get_sequence(session, sequence_id=sequence_id)
    sequence.status = status
    session.flush()
    return sequence
