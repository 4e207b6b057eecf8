"""Draining the outbox: a dispatcher that hands claimed rows to the handler registered for their kind.

The outbox knows no context: whoever composes the application registers the handlers (the
opt-out mails, webhook fan-out and delivery: sendwell.followups). A handler gets a batch of
messages and settles each one itself (store.finish / store.settle), so what it records and
the row's state share one transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

from sqlalchemy.orm import Session, sessionmaker

from sendwell.outbox.store import Message, claim, finish, load

log = logging.getLogger(__name__)

# handler(messages, now) → counts by outcome ("done", "skipped", "retry", "failed")
Handler = Callable[[list[Message], datetime], Mapping[str, int]]


class Dispatcher:
    """Claims due rows and runs each kind's handler on them, one batch per handler."""

    def __init__(self, factory: sessionmaker[Session], handlers: Mapping[str, Handler] | None = None) -> None:
        self.factory = factory
        self.handlers: dict[str, Handler] = dict(handlers or {})

    def register(self, kind: str, handler: Handler) -> None:
        """Send rows of this kind to `handler` (several kinds may share one)."""
        self.handlers[kind] = handler

    def dispatch(self, *, now: datetime | None = None) -> dict[str, int]:
        """Process every due row once; returns counts by outcome (and `claimed`)."""
        now = now or datetime.now(timezone.utc)
        ids = claim(self.factory, now=now)
        counts = {"claimed": len(ids), "done": 0, "skipped": 0, "retry": 0, "failed": 0}
        if not ids:
            return counts
        # Group by handler, not kind, so kinds that share a handler share its batch (one SMTP
        # session for every mail of the batch); handlers run in the order their first row came.
        batches: dict[int, tuple[Handler, list[Message]]] = {}
        for message in load(self.factory, ids):
            handler = self.handlers.get(message.kind)
            if handler is None:
                finish(self.factory, message.id, status="failed", error=f"unknown outbox kind {message.kind!r}")
                counts["failed"] += 1
                continue
            batches.setdefault(id(handler), (handler, []))[1].append(message)
        for handler, messages in batches.values():
            for outcome, n in handler(messages, now).items():
                counts[outcome] = counts.get(outcome, 0) + n
        return counts


class OutboxWorker:
    """A daemon thread that drains the outbox: woken after each commit, polling otherwise."""

    def __init__(self, dispatcher: Dispatcher, poll_seconds: float = 15.0, debounce_seconds: float = 0.5) -> None:
        self.dispatcher = dispatcher
        self.poll_seconds = poll_seconds
        self.debounce_seconds = debounce_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sendwell-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            # Let a burst of opt-outs coalesce into a few batches rather than one drain per
            # request competing with the requests for the SQLite write lock.
            self._stop.wait(self.debounce_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                while self.dispatcher.dispatch()["claimed"] and not self._stop.is_set():
                    pass
            except Exception:  # keep the thread alive; the rows stay pending and are retried
                log.exception("outbox dispatch failed")
