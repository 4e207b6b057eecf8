"""The outbox: mails and webhooks that follow a committed opt-out, sent after the commit.

Why an outbox drained after commit, rather than sending inside the request or enqueueing a
Huey job:
- the suppression must be committed before the 200 (RFC 8058, COMPLIANCE rule 10), and an
  SMTP server that is slow or down must neither delay that answer nor roll the opt-out back;
- the row is written in the opt-out's own transaction, so a crash cannot lose the thank-you
  and a rolled-back opt-out sends nothing (a Huey job enqueued after commit could be lost in
  between, and one enqueued before commit could fire for a rollback);
- the unique dedupe key makes "never sent twice" a database constraint, for every method,
  including mailto and reply opt-outs arriving in another process.
A dispatcher thread in `sendwell serve` (OutboxWorker) is woken right after each commit and
also polls, so rows written by any process (inbound mail, CLI) go out, and failures are
retried with exponential backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from sendwell.db.models import OutboxMessage
from sendwell.db.session import transaction

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 10
SIGNATURE_HEADER = "X-Sendwell-Signature"


def enqueue(
    session: Session, *, kind: str, contact_id: int | None = None, payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None, now: datetime | None = None,
) -> bool:
    """Add work to the outbox in the caller's transaction; False if the dedupe key already exists."""
    values = dict(kind=kind, contact_id=contact_id, payload=payload or {}, dedupe_key=dedupe_key,
                  status="pending", attempts=0, next_attempt_at=now or datetime.now(timezone.utc),
                  created_at=now or datetime.now(timezone.utc))
    if dedupe_key is None:
        session.add(OutboxMessage(**values))
        return True
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(OutboxMessage).values(**values).on_conflict_do_nothing(
        index_elements=["dedupe_key"]).returning(OutboxMessage.id)
    return session.execute(stmt).scalar() is not None


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at 6 hours."""
    return min(timedelta(seconds=30) * (2 ** max(attempts - 1, 0)), timedelta(hours=6))


def sign_body(secret: str, body: bytes) -> str:
    """The webhook signature header value: `sha256=<hex HMAC-SHA256 of the raw body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def claim(factory: sessionmaker[Session], *, now: datetime, limit: int = 200) -> list[int]:
    """Lease due rows to this dispatcher; a crashed dispatcher's lease simply expires."""
    with transaction(factory) as session:
        query = (
            select(OutboxMessage.id)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
                   or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now))
            .order_by(OutboxMessage.id).limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        if ids:
            session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(lease_until=now + LEASE))
        return ids


def finish(factory: sessionmaker[Session], row_id: int, *, status: str, error: str | None = None,
           now: datetime | None = None, record: Callable[[Session, OutboxMessage], None] | None = None) -> None:
    """Record a row's outcome: done / skipped / failed, or back to pending with a backoff.

    `record(session, row)` runs in the same transaction once the row is settled (the webhook
    delivery log), so the log and the row's state never disagree.
    """
    now = now or datetime.now(timezone.utc)
    with transaction(factory) as session:
        row = session.get(OutboxMessage, row_id)
        if row is None:
            return
        row.lease_until = None
        row.last_error = error[:1000] if error else None
        row.attempts += 1
        if status == "retry":
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
            else:
                row.next_attempt_at = now + backoff(row.attempts)
        else:
            row.status = status
            if status == "done":
                row.sent_at = now
        if record is not None:
            record(session, row)


@dataclass(frozen=True)
class WebhookResult:
    """What one POST to an endpoint came to."""

    http_status: int | None  # None when no answer came (connection refused, timeout, …)
    error: str | None  # None on 2xx
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


def deliver_webhook(url: str, secret: str, body: bytes, timeout: float = 10.0,
                    headers: dict[str, str] | None = None) -> WebhookResult:
    """POST one signed body and report the answer; never raises for network trouble."""
    import httpx

    sent = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(secret, body),
            "User-Agent": "Sendwell-Webhook/1", **(headers or {})}
    start = time.perf_counter()
    try:
        # No redirects: a 3xx is an endpoint misconfiguration to see in the log, and following
        # one would re-send the signed body to a host nobody configured.
        response = httpx.post(url, content=body, headers=sent, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return WebhookResult(None, f"{type(exc).__name__}: {exc}"[:1000], time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if 200 <= response.status_code < 300:
        return WebhookResult(response.status_code, None, seconds)
    return WebhookResult(response.status_code, f"HTTP {response.status_code}", seconds)


def webhook_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class OutboxWorker:
    """A daemon thread that drains the outbox: woken after each commit, polling otherwise."""

    def __init__(self, runtime: Any, poll_seconds: float = 15.0, debounce_seconds: float = 0.5) -> None:
        self.runtime = runtime
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
        from sendwell.optout.dispatch import dispatch_outbox

        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            # Let a burst of opt-outs coalesce into a few batches rather than one drain per
            # request competing with the requests for the SQLite write lock.
            self._stop.wait(self.debounce_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                while dispatch_outbox(self.runtime)["claimed"] and not self._stop.is_set():
                    pass
            except Exception:  # keep the thread alive; the rows stay pending and are retried
                log.exception("outbox dispatch failed")
