"""Who runs the hygiene pass, and when: a lease row in the database, so one process in a fleet does.

Every `sendwell serve` and every `sendwell worker` asks on each scan (sendwell.flows.run_hygiene_if_due);
the conditional UPDATE below lets exactly one of them through per interval, whichever database
is in use (PostgreSQL re-checks the WHERE after taking the row lock; SQLite's BEGIN IMMEDIATE
makes writers take turns). A process that dies mid-pass holds the lease only until it expires.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sendwell.db.models import SchedulerLease

JOB = "hygiene"
LEASE = timedelta(hours=1)  # longer than any pass; a crashed holder is replaced after this


def holder_name() -> str:
    """This process, as the lease records it."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def claim_turn(session: Session, *, name: str, holder: str, now: datetime, lease: timedelta = LEASE) -> bool:
    """Take the job's lease if the job is due and nobody holds it; True if this caller may run it."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(SchedulerLease).values(name=name, holder="", lease_until=None, next_run_at=now)
                    .on_conflict_do_nothing(index_elements=["name"]))
    taken = session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.next_run_at <= now,
               or_(SchedulerLease.lease_until.is_(None), SchedulerLease.lease_until < now))
        .values(holder=holder, lease_until=now + lease)
        .returning(SchedulerLease.name)
    ).first()
    return taken is not None


def finish_turn(session: Session, *, name: str, holder: str, next_run_at: datetime | None) -> None:
    """Release the lease; with `next_run_at` the job is done until then, without it it may run again now."""
    values: dict[str, object] = {"lease_until": None}
    if next_run_at is not None:
        values["next_run_at"] = next_run_at
    session.execute(update(SchedulerLease).where(SchedulerLease.name == name, SchedulerLease.holder == holder)
                    .values(**values))
