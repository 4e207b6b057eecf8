"""What the sequence modules share: states, the error, the clock and the dialect's INSERT … ON CONFLICT."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sendwell.db.models import Sequence
from sendwell.sequences.definition import Definition, parse_definition

ACTIVE, DONE, EXITED = "active", "done", "exited"
STATUSES = ("active", "paused")
SKIP_EXITED = "sequence_exited"  # a step's mail not sent: the contact left the sequence before it went
STEP_PAUSED = "step_paused"  # an enrollment waits: its mail step's spike alert paused the step
METHOD = "sequence"  # the `method` of events a set step records


class SequenceError(ValueError):
    """The sequence cannot be created or changed as asked."""


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def insert_for(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def definition_of(sequence: Sequence) -> Definition:
    return parse_definition(sequence.definition)
def get_sequence(session: Session, *, sequence_id: int) -> Sequence:
    sequence = session.get(Sequence, sequence_id)
    if sequence is None:
        raise SequenceError(f"no sequence with id {sequence_id}")
    return sequence

