"""The deliverer: renders, signs and hands each claimed mail to the transport, and records its result."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns.service import get_campaign
from sendwell.config import Settings
from sendwell.content.brand import load_brand
from sendwell.content.footer import RecipientFacts
from sendwell.content.recipients import recipient_facts
from sendwell.content.render import CompiledCampaign, Links, TemplateError
from sendwell.db.models import Campaign, CampaignKind, CampaignStatus, Contact, Send, SendState, UTCDateTime
from sendwell.db.rawsql import driver_cursor
from sendwell.db.session import transaction
from sendwell.delivery.claims import LEASE, chunks, owned, release_claimed
from sendwell.delivery.instruments import smtp_timer
from sendwell.delivery.ports import Signer, Throttle, Throttled
from sendwell.delivery.verp import make_return_path
from sendwell.insight.tracking import (
    append_to_body,
    make_click_token,
    make_open_token,
    make_trap_token,
    pixel_html,
    rewrite_links,
    trap_html,
)
from sendwell.mail.mime import HeaderInjection, build_message, idna_address, make_message_id
from sendwell.mail.transport import Outcome, Transport, TransportUnavailable
from sendwell.optout.gate import hold_for_send
from sendwell.optout.tokens import (
    SALT_KEEP,
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    TokenData,
    make_mailto_token,
    make_token,
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for 4xx replies and connection errors, and when to give up."""

    base: timedelta = timedelta(minutes=5)
    max_delay: timedelta = timedelta(hours=6)
    max_age: timedelta = timedelta(hours=72)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            base=timedelta(seconds=settings.retry_base_seconds),
            max_delay=timedelta(seconds=settings.retry_max_delay_seconds),
            max_age=timedelta(hours=settings.retry_max_age_hours),
        )

    def delay(self, attempts: int) -> timedelta:
        """Wait before attempt `attempts + 1`: base, 2×base, 4×base, … capped."""
        return min(self.base * (2 ** max(attempts - 1, 0)), self.max_delay)


# A hook for permanent failures (5xx), called in the transaction that records the failure,
# so the bounce policy's verdict is durable together with it: hook(session, send_id=, code=, message=).
FailureHook = Callable[..., None]

# The circuit breaker, run during and after a batch: rate_check(session, campaign_id) judges the
# campaign's rates and pauses it on a critical spike. The runtime wires insight's check in, so delivery
# does not depend on insight's alerts.
RateCheck = Callable[[Session, int], None]


@dataclass
class _Mail:
    send_id: int
    rcpt: str
    attempts: int
    first_attempt_at: datetime | None
    contact_id: int = 0
    email_hash: str = ""
    envelope_from: str = ""
    data: bytes = b""
    message_id: str = ""
    due: float = 0.0  # monotonic time its limits' reservation lets it go (delivery/throttle.py)
    held: Throttled | None = None  # over its provider group's limit for longer than max_wait: deferred


@dataclass
class Deliverer:
    """Renders, signs and hands mail to a transport; one per SMTP session, reused across batches.

    Crash safety (docs/delivery.md): each mail is marked in flight, durably, before its
    SMTP transaction, and its result is committed right after it, in the same commit that
    marks the next mail in flight. A crash therefore leaves at most one in-flight mail per
    session, and lease recovery flags exactly those as possible duplicates.
    """

    settings: Settings
    factory: sessionmaker[Session]
    transport: Transport
    signer: Signer | None = None  # when DKIM is configured
    throttle: Throttle | None = None  # shared by a process's deliverers
    should_stop: Callable[[], bool] = lambda: False  # graceful stop: finish the mail, release the rest
    failure_hooks: list[FailureHook] = field(default_factory=list)
    rate_check: RateCheck | None = None
    # Where a reload puts new settings: read once per batch, so a swapped settings object
    # takes effect from the next batch on. None: keep `settings`.
    settings_source: Callable[[], Settings] | None = None
    _compiled: dict[int, CompiledCampaign] = field(default_factory=dict)
    _last_rate_check: dict[int, float] = field(default_factory=dict)

    def check_rates(self, campaign_id: int) -> None:
        """Judge the campaign's rates with `rate_check`; a critical spike pauses it.

        Called on deliver()'s one-second tick, mid-batch, and after each batch. Throttled per
        deliverer (alert_check_interval): each check reads the campaign's sends.
        """
        if self.rate_check is None:
            return
        now = time.monotonic()
        last = self._last_rate_check.get(campaign_id)
        if last is not None and now - last < self.settings.alert_check_interval:
            return
        self._last_rate_check[campaign_id] = now
        with transaction(self.factory) as session:
            self.rate_check(session, campaign_id)

    def follow_settings(self) -> None:
        """Switch to the object `settings_source` returns when it is a new one (settings were reloaded)."""
        if self.settings_source is None:
            return
        settings = self.settings_source()
        if settings is not self.settings:
            self.settings = settings
            # Derived from the old object: compiled templates and the parsed sender domain.
            self._compiled.clear()
            self.__dict__.pop("_sender_domain", None)

    def compiled(self, campaign: Campaign) -> CompiledCampaign:
        if campaign.id not in self._compiled:
            with transaction(self.factory) as session:  # the brand layout as it is when the campaign starts here
                brand = load_brand(session, base_url=self.settings.base_url)
            self._compiled[campaign.id] = CompiledCampaign(
                subject=campaign.subject, html=campaign.html, text=campaign.text, settings=self.settings,
                kind=campaign.kind, brand=brand,
            )
        return self._compiled[campaign.id]

    @property
    def sender_domain(self) -> str:
        # Parsed once: email.utils.parseaddr costs ~0.5 ms a call on current Pythons.
        domain = self.__dict__.get("_sender_domain")
        if domain is None:
            domain = self.__dict__["_sender_domain"] = self.settings.sender_domain
        return domain

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def deliver(self, campaign_id: int, send_ids: list[int], *, token: str | None = None) -> dict[str, Any]:
        """Send already-claimed sends; returns counts and the ids handed back unsent (`released`).

        With the claim's `token`, a send whose claim was lost (lease lapsed, recovered and
        claimed by another worker) is left alone instead of being sent a second time.
        """
        self.follow_settings()
        counts: dict[str, Any] = {"sent": 0, "deferred": 0, "failed": 0, "skipped": 0, "released": [], "lost": 0,
                                  "throttled": 0}
        with transaction(self.factory) as session:
            campaign = get_campaign(session, campaign_id=campaign_id)
            rows = session.execute(
                select(Send, Contact).join(Contact, Contact.id == Send.contact_id)
                .where(Send.id.in_(send_ids), Send.state == SendState.SENDING.value,
                       owned(token)).order_by(Send.id)
            ).all()
            # Footer facts (consent kind → lawful basis / US ad notice, data source) in one query.
            facts = recipient_facts(session, contact_ids=[contact.id for _, contact in rows])
            session.expunge_all()
        compiled = self.compiled(campaign)
        engine = self.factory.kw["bind"]
        policy = RetryPolicy.from_settings(self.settings)
        todo = list(rows)
        pos = 0
        unreachable: str | None = None
        halted: str | None = None  # the campaign was paused or cancelled meanwhile
        next_check = time.monotonic() + 1.0
        renew_at = time.monotonic() + self.settings.lease_seconds / 3

        def prepare() -> _Mail | None:
            # Build the next mail; a contact whose data cannot make a message fails alone.
            nonlocal pos
            while pos < len(todo):
                send, contact = todo[pos]
                pos += 1
                mail = _Mail(send.id, contact.email, send.attempts, send.first_attempt_at, contact.id, contact.email_hash)
                reserved = False
                try:
                    mail.rcpt = idna_address(contact.email)  # RFC 5891: punycode domain on the wire
                    if self.throttle is not None:  # its place under the limits first: a deferred mail is not built
                        try:
                            wait = self.throttle.reserve(mail.rcpt)
                        except Throttled as exc:
                            mail.held = exc
                            return mail
                        reserved = True
                        mail.due = time.monotonic() + wait if wait > 0 else 0.0
                    mail.envelope_from, mail.data, mail.message_id = self.build(campaign, compiled, send, contact,
                                                                                facts.get(contact.id))
                    return mail
                except (TemplateError, HeaderInjection, ValueError) as exc:
                    if reserved and self.throttle is not None:
                        self.throttle.done(mail.rcpt, "skip", 0, "")  # frees its in-flight slot
                    with conn.begin():
                        counts[_record(conn, mail, "permanent", 0, f"cannot build message: {exc}", policy,
                                       self._hooks_for(conn))] += 1
            return None

        later: list[tuple[float, int, _Mail]] = []  # reserved for a moment ahead: (due, send id, mail)

        def take() -> _Mail | None:
            # The next mail to hand over: one whose reserved moment has come, else the next one
            # built that may go now, or one over its limit for long (`held`: it is deferred). A
            # mail due a moment ahead waits in `later` while mail to other groups goes; when no
            # other is left, the earliest of them comes back and the loop waits for its moment.
            while not (later and later[0][0] <= time.monotonic()):
                mail = prepare()
                if mail is None:
                    break
                if mail.held is not None or mail.due <= time.monotonic():
                    return mail
                heapq.heappush(later, (mail.due, mail.send_id, mail))
            return heapq.heappop(later)[2] if later else None

        back: list[int] = []  # built, never marked in flight: handed back with the rest

        # One connection for the whole batch and one short transaction per mail: the result
        # of the mail before and the hand-off check of this one (sendwell.optout.gate) commit
        # together. No transaction stays open during the SMTP exchange, and the next mail is
        # built before it, so a result is stored right after the server's reply.
        conn = engine.connect()
        try:
            mail = take()
            done: tuple[_Mail, Outcome] | None = None  # handed to SMTP, result not yet stored
            while mail is not None or done is not None:
                if mail is not None:
                    stop = unreachable is not None or self.should_stop()
                    if not stop and time.monotonic() >= next_check:
                        next_check = time.monotonic() + 1.0
                        # The breaker on the same tick: a critical spike pauses the campaign
                        # in the database, so the read below stops this batch mid-way.
                        self.check_rates(campaign_id)
                        halted = self._halted(engine, campaign_id)
                    if stop or halted is not None:
                        back.append(mail.send_id)  # built but never marked: it goes back (or is deferred) with the rest
                        if mail.held is None and self.throttle is not None:
                            self.throttle.done(mail.rcpt, "skip", 0, "")  # frees its in-flight slot
                        mail = None
                    elif time.monotonic() >= renew_at:
                        renew_at = time.monotonic() + self.settings.lease_seconds / 3
                        self._renew(engine, [mail.send_id] + [m.send_id for _, _, m in later]
                                    + [r[0].id for r in todo[pos:]], token)
                if mail is not None and mail.due > time.monotonic():
                    if done is not None:  # stored now, not after the wait
                        with conn.begin():
                            counts[_record(conn, done[0], done[1].status, done[1].code, done[1].message, policy,
                                           self._hooks_for(conn))] += 1
                        done = None
                    time.sleep(max(0.0, mail.due - time.monotonic()))  # nothing else to send meanwhile
                held = mail.held if mail is not None else None  # its provider group is full: defer it
                go = False
                with conn.begin():
                    if done is not None:
                        counts[_record(conn, done[0], done[1].status, done[1].code, done[1].message, policy,
                                       self._hooks_for(conn))] += 1
                        done = None
                    if mail is not None and held is not None:
                        _defer_throttled(conn, mail.send_id, held, token)
                        counts["deferred"] += 1
                        counts["throttled"] += 1
                    elif mail is not None:
                        # The opt-out gate: the suppression check and the in-flight mark (durable
                        # before the SMTP transaction: recovery must know this one may be out).
                        why = hold_for_send(conn, contact_id=mail.contact_id, email_hash=mail.email_hash)
                        if why is not None:
                            counts[_record(conn, mail, "skip", 0, why, policy, None)] += 1
                        elif _mark_in_flight(conn, mail.send_id, _now(), token, self.lease):
                            go = True
                        else:
                            counts["lost"] += 1  # our claim on it lapsed: someone else has it now
                if mail is None:
                    break
                if not go and held is None and self.throttle is not None:
                    self.throttle.done(mail.rcpt, "skip", 0, "")  # not sent: free its in-flight slot
                following = take()
                if go:
                    try:
                        with smtp_timer():  # SMTP latency for Prometheus (delivery/instruments.py)
                            outcome = self.transport.send(mail.envelope_from, mail.rcpt, mail.data)
                    except TransportUnavailable as exc:
                        unreachable = str(exc)
                        outcome = Outcome("temporary", 0, unreachable)
                    # Frees the in-flight slot; a "slow down" answer halves the group's pace.
                    if self.throttle is not None and self.throttle.done(mail.rcpt, outcome.status, outcome.code,
                                                                        outcome.message):
                        self.transport.close()  # the group's mails per SMTP session: the next send opens a new one
                    done = (mail, outcome)
                mail = following
        finally:
            conn.close()
        if self.throttle is not None:  # reserved, never sent: free their in-flight slots
            for _, _, m in later:
                self.throttle.done(m.rcpt, "skip", 0, "")
        rest = back + [m.send_id for _, _, m in later] + [send.id for send, _ in todo[pos:]]
        if rest:
            with engine.begin() as conn:
                if unreachable is not None:
                    _defer_unsent(conn, rest, policy.base, unreachable, token)
                elif halted == CampaignStatus.CANCELLED.value:
                    _skip_cancelled(conn, rest, token)
                else:
                    release_claimed(conn, rest, token)
                    counts["released"] = rest
        if unreachable is not None:
            counts["deferred"] += len(rest)
            raise TransportUnavailable(unreachable)
        return counts

    def _hooks_for(self, conn: Any) -> Callable[[int, int, str], None] | None:
        if not self.failure_hooks:
            return None

        def run(send_id: int, code: int, message: str) -> None:
            session = Session(bind=conn)
            try:
                for hook in self.failure_hooks:
                    hook(session, send_id=send_id, code=code, message=message)
                session.flush()
            finally:
                session.close()

        return run

    def _halted(self, engine: Any, campaign_id: int) -> str | None:
        with engine.connect() as conn:
            status = conn.execute(select(Campaign.status).where(Campaign.id == campaign_id)).scalar()
        return None if status == CampaignStatus.SENDING.value else status

    def _renew(self, engine: Any, ids: list[int], token: str | None) -> None:
        if not ids:
            return
        now = _now()
        with engine.begin() as conn:
            for chunk in chunks(ids, 500):
                conn.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value, owned(token))
                             .values(lease_until=now + self.lease))

    def build(self, campaign: Campaign, compiled: CompiledCampaign, send: Send, contact: Contact,
              facts: RecipientFacts | None = None) -> tuple[str, bytes, str]:
        """The VERP envelope sender, the signed message bytes and its Message-ID."""
        s = self.settings
        keys = s.secret_keys
        token_data = TokenData(contact.id, campaign.id, campaign.topic_id)
        unsubscribe_url = f"{s.base_url}/u/{make_token(keys, SALT_UNSUBSCRIBE, token_data)}"
        links = Links(
            unsubscribe=unsubscribe_url,
            preferences=f"{s.base_url}/p/{make_token(keys, SALT_PREFERENCES, token_data)}",
            keep=f"{s.base_url}/k/{make_token(keys, SALT_KEEP, token_data)}"
            if campaign.kind == CampaignKind.RECONFIRMATION.value else "",
        )
        rendered = compiled.render(contact, links, facts)
        html = rendered.html
        if s.click_tracking:
            html = rewrite_links(
                html, lambda url: f"{s.base_url}/r/{make_click_token(keys, send.id, url)}",
                keep={links.unsubscribe, links.preferences, links.keep},
            )
            # One hidden link no person can see: whatever follows it is a machine walking the mail.
            trap = make_trap_token(keys, send.id, s.website or f"{s.base_url}/")
            html = append_to_body(html, trap_html(f"{s.base_url}/r/{trap}"))
        if s.open_tracking:
            html = append_to_body(html, pixel_html(f"{s.base_url}/o/{make_open_token(keys, send.id)}.gif"))
        domain = self.sender_domain
        mailto = f"mailto:unsubscribe+{make_mailto_token(keys, contact.id, campaign.id)}@{domain}?subject=unsubscribe"
        # Stored at the first attempt and derived the same way after a crash: a resent
        # possible duplicate carries the Message-ID of the first copy.
        message_id = send.message_id or make_message_id(send.id, domain, keys[-1])
        data = build_message(
            from_header=s.from_,
            to_name=" ".join(x for x in (contact.first_name, contact.last_name) if x),
            to_address=contact.email,
            subject=rendered.subject,
            text=rendered.text,
            html=html,
            message_id=message_id,
            list_unsubscribe=[unsubscribe_url, mailto],
            list_id=f"{s.list_id_name} <{s.list_id_name}.{domain}>",
            feedback_id=f"{campaign.id}:{campaign.kind}:{domain}",
            one_click=True,
        )
        if self.signer is not None:
            data = self.signer.sign(data) + data
        return make_return_path(keys, send.id, domain), data, message_id

# Statements built once: per-mail bookkeeping is two UPDATEs in one commit, and building
# a fresh Core statement for each costs more than executing it.
_DONE_COLUMNS = dict(attempts=Send.attempts + 1, lease_until=None, in_flight_at=None,
                     updated_at=bindparam("now", type_=UTCDateTime), message_id=bindparam("mid"),
                     last_error=bindparam("error"))
_SKIP = update(Send).where(Send.id == bindparam("sid")).values(
    state=SendState.SKIPPED.value, skip_reason=bindparam("reason"), **_DONE_COLUMNS)
_DEFER = update(Send).where(Send.id == bindparam("sid")).values(
    state=SendState.DEFERRED.value, retry_at=bindparam("retry_at", type_=UTCDateTime), **_DONE_COLUMNS)
_FAIL = update(Send).where(Send.id == bindparam("sid")).values(
    state=SendState.FAILED.value, retry_at=None, **_DONE_COLUMNS)


# The two statements every mail runs, as driver SQL: the same effect as _MARK and _SENT,
# without SQLAlchemy's per-execution compile and cache-key work (~0.3 ms a mail).
_MARK_SQL = ("UPDATE sends SET in_flight_at = {p}, first_attempt_at = COALESCE(first_attempt_at, {p}), "
             "updated_at = {p}, lease_until = {p} WHERE id = {p} AND state = 'sending'")
_MARK_TOKEN_SQL = _MARK_SQL + " AND claim_token = {p}"
_SENT_SQL = ("UPDATE sends SET state = 'sent', sent_at = {p}, retry_at = NULL, attempts = attempts + 1, "
             "lease_until = NULL, in_flight_at = NULL, updated_at = {p}, message_id = {p}, last_error = NULL "
             "WHERE id = {p}")


def _driver_sql(conn: Any, sql: str) -> str:
    return sql.format(p="?" if conn.dialect.paramstyle == "qmark" else "%s")


def _db_time(conn: Any, now: datetime) -> Any:
    # SQLAlchemy keeps SQLite datetimes as UTC text in this layout (sqlalchemy.dialects.sqlite.DATETIME).
    # isoformat is C and a fifth of strftime's cost; the same text for a UTC time.
    return now.replace(tzinfo=None).isoformat(" ", "microseconds") if conn.dialect.name == "sqlite" else now


def _mark_in_flight(conn: Any, send_id: int, now: datetime, token: str | None = None,
                    lease: timedelta = LEASE) -> bool:
    """Durable before the SMTP transaction starts: recovery must know this one may be out.

    Also renews the lease of this send, and checks that the claim is still ours (False:
    it was recovered, and perhaps claimed by another worker; do not send it).
    """
    t = _db_time(conn, now)
    params: tuple[Any, ...] = (t, t, t, _db_time(conn, now + lease), send_id)
    cursor = driver_cursor(conn)
    if token is None:
        cursor.execute(_driver_sql(conn, _MARK_SQL), params)
    else:
        cursor.execute(_driver_sql(conn, _MARK_TOKEN_SQL), params + (token,))
    return cursor.rowcount == 1


def _record(conn: Any, mail: _Mail, status: str, code: int, message: str, policy: RetryPolicy,
            hooks: Callable[[int, int, str], None] | None) -> str:
    """Store one SMTP transaction's result; returns sent | deferred | failed | skipped."""
    now = _now()
    params: dict[str, Any] = {"sid": mail.send_id, "now": now, "mid": mail.message_id or None, "error": None}
    if status == "sent":
        t = _db_time(conn, now)
        driver_cursor(conn).execute(_driver_sql(conn, _SENT_SQL), (t, t, mail.message_id or None, mail.send_id))
        return "sent"
    if status == "skip":
        conn.execute(_SKIP, dict(params, reason=message[:40], error=f"skipped: {message}"))
        return "skipped"
    error = f"{code} {message}"[:1000] if code else message[:1000]
    first = mail.first_attempt_at or now
    if status == "temporary":
        retry_at = now + policy.delay(mail.attempts + 1)
        if retry_at - first <= policy.max_age:
            conn.execute(_DEFER, dict(params, retry_at=retry_at, error=error))
            return "deferred"
        hours = policy.max_age.total_seconds() / 3600
        error = f"gave up after {mail.attempts + 1} attempts over {hours:g} h; last: {error}"[:1000]
    conn.execute(_FAIL, dict(params, error=error))
    if hooks is not None and status == "permanent":
        hooks(mail.send_id, code, message)
    return "failed"



def _defer_unsent(conn: Any, ids: list[int], delay: timedelta, error: str, token: str | None = None) -> None:
    # The server is unreachable: nothing was tried for these, so their attempt count stays.
    now = _now()
    for chunk in chunks(ids, 500):
        conn.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value, owned(token)).values(
            state=SendState.DEFERRED.value, retry_at=now + delay, lease_until=None, in_flight_at=None,
            last_error=error[:1000], updated_at=now))


def _defer_throttled(conn: Any, send_id: int, held: Throttled, token: str | None) -> None:
    # Not an attempt: nothing was handed to SMTP, so the attempt count and first attempt stay.
    now = _now()
    conn.execute(update(Send).where(Send.id == send_id, Send.state == SendState.SENDING.value, owned(token)).values(
        state=SendState.DEFERRED.value, skip_reason="throttled", retry_at=now + timedelta(seconds=held.retry_after),
        lease_until=None, in_flight_at=None, last_error=str(held)[:1000], updated_at=now))


def _skip_cancelled(conn: Any, ids: list[int], token: str | None = None) -> None:
    for chunk in chunks(ids, 500):
        conn.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value, owned(token)).values(
            state=SendState.SKIPPED.value, skip_reason="cancelled", lease_until=None, in_flight_at=None,
            updated_at=_now()))
