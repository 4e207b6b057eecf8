"""The outbox dispatcher: rows go to the handler registered for their kind, in one batch per handler."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from sendwell.db.models import OutboxMessage
from sendwell.db.session import transaction
from sendwell.outbox.store import Message, enqueue, settle
from sendwell.outbox.worker import Dispatcher


def _rows(runtime) -> dict[str, tuple[str, str | None]]:
    with transaction(runtime.factory) as s:
        return {r.kind + str(r.id): (r.status, r.last_error) for r in s.scalars(select(OutboxMessage))}


def test_each_kind_goes_to_its_handler_and_kinds_sharing_one_share_a_batch(runtime) -> None:
    with transaction(runtime.factory) as s:
        for kind in ("ping", "pong", "ping", "mystery"):
            enqueue(s, kind=kind, payload={"n": 1})
        assert enqueue(s, kind="ping", dedupe_key="once") is True  # the first with a key is added
        assert enqueue(s, kind="ping", dedupe_key="once") is False  # never twice
    batches: list[list[str]] = []

    def handler(messages: list[Message], now: datetime) -> dict[str, int]:
        batches.append([m.kind for m in messages])
        with transaction(runtime.factory) as s:
            settle(s, [m.id for m in messages], status="done", sent_at=now)
        return {"done": len(messages)}

    dispatcher = Dispatcher(runtime.factory)
    dispatcher.register("ping", handler)
    dispatcher.register("pong", handler)
    counts = dispatcher.dispatch()
    assert counts == {"claimed": 5, "done": 4, "skipped": 0, "retry": 0, "failed": 1}
    assert batches == [["ping", "pong", "ping", "ping"]]
    statuses = sorted(_rows(runtime).values(), key=str)
    assert statuses.count(("done", None)) == 4
    assert ("failed", "unknown outbox kind 'mystery'") in statuses
    assert dispatcher.dispatch()["claimed"] == 0  # settled rows are not claimed again


def test_rows_not_yet_due_wait(runtime) -> None:
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    with transaction(runtime.factory) as s:
        enqueue(s, kind="ping", now=later)
    dispatcher = Dispatcher(runtime.factory, {"ping": lambda messages, now: {"done": len(messages)}})
    assert dispatcher.dispatch()["claimed"] == 0
    assert dispatcher.dispatch(now=later)["claimed"] == 1
