"""The notify step: one signed JSON POST per contact, handed to the webhooks' outbox delivery.

The row is a `webhook` outbox row as sendwell.webhooks.delivery posts it: written in the
advance's transaction (durable), signed the Standard Webhooks way, retried with backoff and
recorded in the delivery log like every other webhook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sendwell.db.models import Sequence
from sendwell.outbox.store import enqueue

NOTIFY_EVENT = "sequence.notify"  # the `event` of a notify step that names none


def notification(*, sequence: Sequence, step: dict[str, Any], contact_id: int, email: str,
                 now: datetime) -> dict[str, Any]:
    """The JSON body a notify step posts for one contact."""
    return {"event": step.get("event") or NOTIFY_EVENT, "occurred_at": now.isoformat(), "contact_id": contact_id,
            "email": email, "data": {"sequence_id": sequence.id, "sequence": sequence.name, "step_id": step["id"],
                                     "version": sequence.version}}


def queue_notifications(session: Any, *, sequence: Sequence, step: dict[str, Any],
                        rows: list[tuple[int, int, str]], now: datetime) -> None:
    """Queue the POST of each (enrollment, contact, email); an enrollment's step is queued once (dedupe key)."""
    for enrollment_id, contact_id, email in rows:
        enqueue(session, kind="webhook", contact_id=contact_id, now=now,
                dedupe_key=f"sequence-notify:{enrollment_id}:{step['id']}",
                payload={"url": step["url"], "body": notification(sequence=sequence, step=step, contact_id=contact_id,
                                                                  email=email, now=now)})
