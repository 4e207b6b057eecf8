"""Campaigns into sends: create, plan, queue, claim, deliver, and report their states."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, case, func, literal, literal_column, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.content.footer import RecipientFacts
from sendwell.content.recipients import recipient_facts
from sendwell.content.render import CompiledCampaign, Links, TemplateError
from sendwell.contacts.service import ensure_topic
from sendwell.db.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Contact,
    Send,
    SendState,
    Topic,
    UTCDateTime,
)
from sendwell.db.session import driver_cursor, transaction
from sendwell.delivery.mime import HeaderInjection, build_message, idna_address, make_message_id
from sendwell.delivery.transport import Outcome, Transport, TransportUnavailable
from sendwell.delivery.verp import make_return_path
from sendwell.metrics import smtp_timer
from sendwell.optout.tokens import (
    SALT_KEEP,
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    TokenData,
    make_mailto_token,
    make_token,
)
from sendwell.optout.gate import hold_for_send
from sendwell.policy.caps import OVER_CAP_MODES, FrequencyPolicy
from sendwell.policy.eligibility import SKIP_FREQUENCY_CAP, skip_reason
from sendwell.policy.service import defer_outside_window, defer_over_cap, defer_sends, earliest_allowed, lock_planning
from sendwell.segments.expression import compile_segment

BATCH_SIZE = 200
LEASE = timedelta(minutes=10)  # default; SENDWELL_LEASE_SECONDS
log = logging.getLogger("sendwell.delivery")


class CampaignError(ValueError):
    """The campaign cannot be created or changed as asked."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def create_campaign(
    session: Session,
    *,
    settings: Settings,
    name: str,
    subject: str,
    html: str,
    text: str = "",
    segment: str = "",
    topic: str | None = None,
    kind: str = CampaignKind.MARKETING.value,
    over_cap: str = "skip",
) -> Campaign:
    """Validate and store a draft campaign."""
    if over_cap not in OVER_CAP_MODES:
        raise CampaignError(f"unknown over-cap handling {over_cap!r} (use skip or defer)")
    _check_campaign(settings, name=name, subject=subject, html=html, text=text, segment=segment, kind=kind)
    campaign = Campaign(
        name=name.strip(), subject=subject, html=html, text=text, segment_expr=segment, kind=kind, over_cap=over_cap,
        topic_id=ensure_topic(session, slug=topic).id if topic else None,
    )
    session.add(campaign)
    session.flush()
    return campaign


def _check_campaign(settings: Settings, *, name: str, subject: str, html: str, text: str, segment: str,
                    kind: str) -> None:
    """What create and update both refuse: unknown kind, no name or subject, a bad segment or template."""
    if kind not in {k.value for k in CampaignKind}:
        raise CampaignError(f"unknown campaign kind {kind!r} (use one of {', '.join(k.value for k in CampaignKind)})")
    if not name.strip():
        raise CampaignError("the campaign needs a name")
    if not subject.strip():
        raise CampaignError("the campaign needs a subject")
    compile_segment(segment)  # SegmentError names the field or token at fault
    CompiledCampaign(subject=subject, html=html, text=text, settings=settings, kind=kind)  # TemplateError


def update_campaign(
    session: Session,
    *,
    settings: Settings,
    campaign_id: int,
    name: str,
    subject: str,
    html: str,
    text: str = "",
    segment: str = "",
    topic: str | None = None,
    kind: str = CampaignKind.MARKETING.value,
) -> Campaign:
    """Change a draft campaign's content and audience, with the same checks as create_campaign."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    if campaign.status != CampaignStatus.DRAFT.value:
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}: only a draft can be changed")
    _check_campaign(settings, name=name, subject=subject, html=html, text=text, segment=segment, kind=kind)
    campaign.name, campaign.subject, campaign.html, campaign.text = name.strip(), subject, html, text
    campaign.segment_expr, campaign.kind = segment, kind
    campaign.topic_id = ensure_topic(session, slug=topic).id if topic else None
    session.flush()
    return campaign


def schedule_campaign(session: Session, *, campaign_id: int, at: datetime, now: datetime | None = None) -> Campaign:
    """Give a draft a start time (status `scheduled`); the worker's scan starts it when due.

    Call it through flows.schedule_sending, which runs the blocking compliance lint first.
    A scheduled campaign cannot be edited: unschedule it, change it, schedule it again.
    """
    campaign = get_campaign(session, campaign_id=campaign_id)
    if campaign.status != CampaignStatus.DRAFT.value:
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}: only a draft can be scheduled")
    if at.tzinfo is None:
        raise CampaignError("at: the start time needs a time zone (for example 2026-12-01T09:00:00+08:00)")
    try:
        utc = at.astimezone(timezone.utc)
    except OverflowError:
        raise CampaignError(f"at: {at.isoformat()} is out of range") from None
    if utc <= (now or _now()):
        raise CampaignError(f"at: {at.isoformat()} is not in the future; send the campaign now instead")
    at = utc
    campaign.status, campaign.scheduled_at = CampaignStatus.SCHEDULED.value, at
    session.flush()
    return campaign


def due_scheduled(session: Session, *, now: datetime | None = None) -> list[int]:
    """Scheduled campaigns whose start time has come, earliest first."""
    return list(session.scalars(
        select(Campaign.id)
        .where(Campaign.status == CampaignStatus.SCHEDULED.value, Campaign.scheduled_at <= (now or _now()))
        .order_by(Campaign.scheduled_at, Campaign.id)
    ))


def claim_scheduled(session: Session, *, campaign_id: int) -> bool:
    """Turn a due scheduled campaign back into a draft for start_sending, if nobody else did.

    One conditional UPDATE, so when several workers scan at once exactly one starts it (on
    PostgreSQL the others wait for its row lock and then match nothing).
    """
    done = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SCHEDULED.value)
        .values(status=CampaignStatus.DRAFT.value)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return bool(done.rowcount)


def get_campaign(session: Session, *, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign with id {campaign_id}")
    return campaign


def _topic_slug(session: Session, campaign: Campaign) -> str | None:
    if campaign.topic_id is None:
        return None
    return session.scalar(select(Topic.slug).where(Topic.id == campaign.topic_id))


def plan_campaign(
    session: Session, *, campaign: Campaign, now: datetime | None = None, settings: Settings | None = None
) -> dict[str, int]:
    """One `sends` row per contact in the segment, eligible ones planned, others skipped with a reason.

    The frequency policy comes from `settings` (else the campaign's snapshot, else the
    defaults) and is stored on the campaign, so the claim-time re-check applies the same rules.
    """
    now = now or _now()
    if campaign.status in (CampaignStatus.CANCELLED.value, CampaignStatus.FINISHED.value):
        raise CampaignError(f"campaign {campaign.id} is {campaign.status}")
    if campaign.status == CampaignStatus.SCHEDULED.value:
        raise CampaignError(f"campaign {campaign.id} is scheduled for {campaign.scheduled_at:%Y-%m-%d %H:%M} UTC: "
                            "unschedule it to send it now")
    policy = FrequencyPolicy.from_settings(settings) if settings is not None else FrequencyPolicy.from_json(campaign.policy)
    campaign.policy = policy.to_json()
    lock_planning(session)  # before the INSERT's snapshot: see lock_planning for why
    reason = skip_reason(campaign, _topic_slug(session, campaign), now, policy=policy)
    # One INSERT … SELECT for the whole segment: planned when the reason is NULL, skipped
    # otherwise. Re-planning is harmless: existing (campaign, contact) rows are kept.
    source = select(
        literal(campaign.id).label("campaign_id"),
        Contact.id.label("contact_id"),
        reason.label("skip_reason"),
    ).where(compile_segment(campaign.segment_expr))
    # OFFSET 0 keeps the database from inlining the subquery into the outer SELECT: inlined,
    # the reason expression (several correlated subqueries per contact) would be evaluated
    # twice per row, once for `state` and once for `skip_reason` (seen in EXPLAIN ANALYZE).
    sub = source.offset(0).subquery()
    state = case((sub.c.skip_reason.is_(None), SendState.PLANNED.value), else_=SendState.SKIPPED.value)
    select_rows = select(
        sub.c.campaign_id, sub.c.contact_id, state, sub.c.skip_reason, literal(0), literal(now)
    ).where(true())  # SQLite: INSERT … SELECT needs a WHERE before ON CONFLICT (parsing ambiguity)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Send).from_select(
        ["campaign_id", "contact_id", "state", "skip_reason", "attempts", "updated_at"], select_rows
    )
    # ON CONFLICT makes PostgreSQL insert each row speculatively; a first plan cannot conflict
    # (plans of every campaign are serialised by lock_planning), so only a re-plan pays for it.
    if session.scalar(select(Send.id).where(Send.campaign_id == campaign.id).limit(1)) is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["contact_id", "campaign_id"])
    session.execute(stmt)
    defer_over_cap(session, campaign=campaign, policy=policy, now=now)
    defer_outside_window(session, campaign=campaign, policy=policy, now=now)
    if campaign.status == CampaignStatus.DRAFT.value:
        campaign.status = CampaignStatus.SENDING.value
        campaign.started_at = now
    session.flush()
    return state_counts(session, campaign_id=campaign.id)


def queue_campaign(session: Session, *, campaign: Campaign, batch_size: int = BATCH_SIZE) -> list[list[int]]:
    """Move planned sends to queued; returns the batches of send ids to hand to the queue."""
    ids = list(
        session.scalars(
            select(Send.id)
            .where(Send.campaign_id == campaign.id, Send.state == SendState.PLANNED.value)
            .order_by(Send.id)
        )
    )
    for chunk in _chunks(ids, 1000):
        session.execute(
            update(Send)
            .where(Send.id.in_(chunk), Send.state == SendState.PLANNED.value)
            .values(state=SendState.QUEUED.value, updated_at=_now())
        )
    session.flush()
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]


def new_claim_token() -> str:
    """A fresh fencing token for one claim."""
    return secrets.token_hex(16)


def claim_sends(
    session: Session,
    *,
    campaign_id: int,
    send_ids: list[int] | None = None,
    limit: int = BATCH_SIZE,
    now: datetime | None = None,
    lease: timedelta = LEASE,
    token: str | None = None,
) -> list[int]:
    """Atomically take queued (or due deferred) sends into `sending`, re-checking eligibility.

    An unsubscribe committed before this transaction turns the send into `skipped`: the
    claim and the re-check happen in one transaction (DESIGN.md: eligibility twice).
    """
    now = now or _now()
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING.value:
        return []
    due = (Send.state == SendState.QUEUED.value) | (
        (Send.state == SendState.DEFERRED.value) & (Send.retry_at <= now)
    )
    candidates = select(Send.id).where(Send.campaign_id == campaign_id, due).order_by(Send.id).limit(limit)
    if send_ids is not None:
        candidates = candidates.where(Send.id.in_(send_ids))
    if session.get_bind().dialect.name == "postgresql":
        # Several workers claim at once: skip rows another worker holds instead of waiting.
        candidates = candidates.with_for_update(skip_locked=True)
    # Two statements on purpose: inside `UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE
    # SKIP LOCKED)` PostgreSQL may rescan the subquery and lock (and claim) more than n rows.
    # SQLite needs no row locks: BEGIN IMMEDIATE already serialises writers.
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    claimed = list(
        session.scalars(
            update(Send)
            .where(Send.id.in_(ids), due)
            .values(state=SendState.SENDING.value, lease_until=now + lease, updated_at=now, claim_token=token,
                    skip_reason=None)
            .returning(Send.id)
        )
    )
    if not claimed:
        return []
    policy = FrequencyPolicy.from_json(campaign.policy)
    # The same eligibility as the plan; only in-flight sends planned before this one count
    # toward its caps (eligibility._cap_clause explains why).
    reason = skip_reason(campaign, _topic_slug(session, campaign), now, policy=policy, before=Send.id)
    rows = session.execute(
        select(Send.id, reason).join(Contact, Contact.id == Send.contact_id).where(
            Send.id.in_(claimed), reason.is_not(None)
        )
    ).all()
    capped = [send_id for send_id, why in rows if why == SKIP_FREQUENCY_CAP and campaign.over_cap == "defer"]
    defer_sends(session, retry=earliest_allowed(session, policy=policy, send_ids=capped, now=now),
                reason=SKIP_FREQUENCY_CAP, now=now)
    for send_id, why in rows:
        if send_id in capped:
            continue
        session.execute(
            update(Send).where(Send.id == send_id).values(
                state=SendState.SKIPPED.value, skip_reason=why, lease_until=None, updated_at=now
            )
        )
    held = {r[0] for r in rows}
    # Outside the recipient's local sending window: wait for the next opening, never skip.
    held.update(defer_outside_window(session, campaign=campaign, policy=policy, now=now,
                                     send_ids=[i for i in claimed if i not in held]))
    session.flush()
    return [i for i in claimed if i not in held]


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
# so a bounce policy (issue 8) is durable together with it: hook(session, send_id=, code=, message=).
FailureHook = Callable[..., None]


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
    signer: Any = None  # sendwell.delivery.dkim.DkimSigner / MultiSigner, when DKIM is configured
    throttle: Any = None  # sendwell.delivery.throttle.Throttle, shared by a process's deliverers
    should_stop: Callable[[], bool] = lambda: False  # graceful stop: finish the mail, release the rest
    failure_hooks: list[FailureHook] = field(default_factory=list)
    _compiled: dict[int, CompiledCampaign] = field(default_factory=dict)
    _last_rate_check: dict[int, float] = field(default_factory=dict)

    def check_rates(self, campaign_id: int) -> None:
        """Judge the campaign's rates after a batch; a critical spike pauses it (circuit breaker).

        Throttled per worker (alert_check_interval): each check reads the campaign's sends, and
        a million-mail campaign has thousands of batches.
        """
        import time

        from sendwell.insight.alerts import Thresholds, check_campaign

        now = time.monotonic()
        last = self._last_rate_check.get(campaign_id)
        if last is not None and now - last < self.settings.alert_check_interval:
            return
        self._last_rate_check[campaign_id] = now
        with transaction(self.factory) as session:
            check_campaign(session, campaign_id=campaign_id, thresholds=Thresholds.from_settings(self.settings))

    def compiled(self, campaign: Campaign) -> CompiledCampaign:
        if campaign.id not in self._compiled:
            self._compiled[campaign.id] = CompiledCampaign(
                subject=campaign.subject, html=campaign.html, text=campaign.text, settings=self.settings,
                kind=campaign.kind,
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
        counts: dict[str, Any] = {"sent": 0, "deferred": 0, "failed": 0, "skipped": 0, "released": [], "lost": 0}
        with transaction(self.factory) as session:
            campaign = get_campaign(session, campaign_id=campaign_id)
            rows = session.execute(
                select(Send, Contact).join(Contact, Contact.id == Send.contact_id)
                .where(Send.id.in_(send_ids), Send.state == SendState.SENDING.value,
                       Send.claim_token == token if token is not None else true()).order_by(Send.id)
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
                try:
                    mail.rcpt = idna_address(contact.email)  # RFC 5891: punycode domain on the wire
                    mail.envelope_from, mail.data, mail.message_id = self.build(campaign, compiled, send, contact,
                                                                                facts.get(contact.id))
                    return mail
                except (TemplateError, HeaderInjection, ValueError) as exc:
                    with conn.begin():
                        counts[_record(conn, mail, "permanent", 0, f"cannot build message: {exc}", policy,
                                       self._hooks_for(conn))] += 1
            return None

        # One connection for the whole batch and one short transaction per mail: the result
        # of the mail before and the hand-off check of this one (sendwell.optout.gate) commit
        # together. No transaction stays open during the SMTP exchange, and the next mail is
        # built before it, so a result is stored right after the server's reply.
        conn = engine.connect()
        try:
            mail = prepare()
            done: tuple[_Mail, Outcome] | None = None  # handed to SMTP, result not yet stored
            while mail is not None or done is not None:
                if mail is not None:
                    stop = unreachable is not None or self.should_stop()
                    if not stop and time.monotonic() >= next_check:
                        next_check = time.monotonic() + 1.0
                        halted = self._halted(engine, campaign_id)
                    if stop or halted is not None:
                        pos -= 1  # built but never marked: it goes back (or is deferred) with the rest
                        mail = None
                    elif time.monotonic() >= renew_at:
                        renew_at = time.monotonic() + self.settings.lease_seconds / 3
                        self._renew(engine, [r[0].id for r in todo[pos - 1:]], token)
                if mail is not None and self.throttle is not None:
                    self.throttle.wait_for(mail.rcpt)
                go = False
                with conn.begin():
                    if done is not None:
                        counts[_record(conn, done[0], done[1].status, done[1].code, done[1].message, policy,
                                       self._hooks_for(conn))] += 1
                        done = None
                    if mail is not None:
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
                following = prepare()
                if go:
                    try:
                        with smtp_timer():  # Prometheus SMTP latency (sendwell.metrics)
                            outcome = self.transport.send(mail.envelope_from, mail.rcpt, mail.data)
                    except TransportUnavailable as exc:
                        unreachable = str(exc)
                        outcome = Outcome("temporary", 0, unreachable)
                    done = (mail, outcome)
                mail = following
        finally:
            conn.close()
        rest = [send.id for send, _ in todo[pos:]]
        if rest:
            with engine.begin() as conn:
                if unreachable is not None:
                    _defer_unsent(conn, rest, policy.base, unreachable, token)
                elif halted == CampaignStatus.CANCELLED.value:
                    _skip_cancelled(conn, rest, token)
                else:
                    _release(conn, rest, token)
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
        owned = Send.claim_token == token if token is not None else true()
        with engine.begin() as conn:
            for chunk in _chunks(ids, 500):
                conn.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value, owned)
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
            from sendwell.insight.tracking import make_click_token, rewrite_links

            html = rewrite_links(
                html, lambda url: f"{s.base_url}/r/{make_click_token(keys, send.id, url)}",
                keep={links.unsubscribe, links.preferences, links.keep},
            )
        domain = self.sender_domain
        mailto = f"mailto:unsubscribe+{make_mailto_token(keys, contact.id, campaign.id)}@{domain}?subject=unsubscribe"
        message_id = make_message_id(send.id, domain)
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


def _owned(token: str | None) -> Any:
    return Send.claim_token == token if token is not None else true()


def _release(conn: Any, ids: list[int], token: str | None = None) -> None:
    for chunk in _chunks(ids, 500):
        conn.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value, _owned(token)).values(
            state=SendState.QUEUED.value, lease_until=None, in_flight_at=None, claim_token=None, updated_at=_now()))


def _defer_unsent(conn: Any, ids: list[int], delay: timedelta, error: str, token: str | None = None) -> None:
    # The server is unreachable: nothing was tried for these, so their attempt count stays.
    now = _now()
    for chunk in _chunks(ids, 500):
        conn.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value, _owned(token)).values(
            state=SendState.DEFERRED.value, retry_at=now + delay, lease_until=None, in_flight_at=None,
            last_error=error[:1000], updated_at=now))


def _skip_cancelled(conn: Any, ids: list[int], token: str | None = None) -> None:
    for chunk in _chunks(ids, 500):
        conn.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value, _owned(token)).values(
            state=SendState.SKIPPED.value, skip_reason="cancelled", lease_until=None, in_flight_at=None,
            updated_at=_now()))


def release_sends(factory: sessionmaker[Session], *, send_ids: list[int]) -> None:
    """Hand claimed-but-unsent sends back to the queue."""
    if not send_ids:
        return
    with factory.kw["bind"].begin() as conn:
        _release(conn, send_ids)


@dataclass
class Recovery:
    """What a lease-recovery pass did: sends put back per campaign, and the possible duplicates."""

    requeued: dict[int, list[int]] = field(default_factory=dict)
    possibly_duplicated: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.requeued.values())


def recover_expired_leases(session: Session, *, now: datetime | None = None) -> Recovery:
    """Sends whose worker died go back to the queue; those in flight at the death are flagged.

    A send with `in_flight_at` set was inside its SMTP transaction when its worker stopped
    answering: the server may have accepted it, so the retry may duplicate it. There is at
    most one such send per SMTP session of the dead worker.
    """
    now = now or _now()
    query = select(Send.id, Send.campaign_id, Send.in_flight_at).where(
        # A literal, not a bound parameter, and no ORDER BY: SQLite only uses the partial
        # lease index when the query repeats its WHERE term verbatim, and would rather scan
        # the whole table in id order than sort the few expired rows.
        Send.state == literal_column("'sending'"), Send.lease_until < now
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = sorted(session.execute(query).all())
    report = Recovery()
    for send_id, campaign_id, in_flight in rows:
        report.requeued.setdefault(campaign_id, []).append(send_id)
        if in_flight is not None:
            report.possibly_duplicated.append(send_id)
    ids = [r[0] for r in rows]
    for chunk in _chunks(ids, 500):
        session.execute(update(Send).where(Send.id.in_(chunk), Send.state == SendState.SENDING.value).values(
            state=SendState.QUEUED.value, lease_until=None, in_flight_at=None, claim_token=None, updated_at=now))
    for chunk in _chunks(report.possibly_duplicated, 500):
        session.execute(update(Send).where(Send.id.in_(chunk)).values(possible_duplicate=True))
    if report.possibly_duplicated:
        log.warning("lease recovery: %d sends were in flight when their worker stopped and may be "
                    "delivered twice: %s", len(report.possibly_duplicated), report.possibly_duplicated[:20])
    session.flush()
    return report


def finish_if_done(session: Session, *, campaign_id: int) -> bool:
    """Mark the campaign finished when no send is left to try."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    open_states = (SendState.PLANNED.value, SendState.QUEUED.value, SendState.SENDING.value, SendState.DEFERRED.value)
    left = session.scalar(
        select(func.count()).select_from(Send).where(Send.campaign_id == campaign_id, Send.state.in_(open_states))
    )
    if left == 0 and campaign.status == CampaignStatus.SENDING.value:
        campaign.status = CampaignStatus.FINISHED.value
        campaign.finished_at = _now()
        return True
    return False


def run_campaign(
    factory: sessionmaker[Session],
    deliverer: Deliverer | Sequence[Deliverer],
    *,
    campaign_id: int,
    on_progress: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, Any]:
    """Deliver every due send of a campaign in this process (used by `send --wait`).

    Given several deliverers (one SMTP session each), each runs in its own thread and
    claims its own batches, as the worker's consumer threads do.
    """
    deliverers = [deliverer] if isinstance(deliverer, Deliverer) else list(deliverer)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def loop(d: Deliverer) -> None:
        lease = d.lease
        try:
            while not errors and not d.should_stop():
                token = new_claim_token()
                with transaction(factory) as session:
                    claimed = claim_sends(session, campaign_id=campaign_id, limit=d.settings.batch_size, lease=lease,
                                          token=token)
                if not claimed:
                    return
                d.deliver(campaign_id, claimed, token=token)
                d.check_rates(campaign_id)  # the circuit breaker (insight/alerts.py)
                if on_progress is not None:
                    with lock, transaction(factory) as session:
                        on_progress(state_counts(session, campaign_id=campaign_id))
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    if len(deliverers) == 1:
        loop(deliverers[0])
    else:
        threads = [threading.Thread(target=loop, args=(d,), name=f"deliver-{i}") for i, d in enumerate(deliverers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    with transaction(factory) as session:
        finish_if_done(session, campaign_id=campaign_id)
        return campaign_status(session, campaign_id=campaign_id)


def state_counts(session: Session, *, campaign_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Send.state, func.count()).where(Send.campaign_id == campaign_id).group_by(Send.state)
    ).all()
    return {state: count for state, count in rows}


def campaign_status(session: Session, *, campaign_id: int) -> dict[str, Any]:
    """Counts by state and by skip reason, for `campaigns status`."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    skips = session.execute(
        select(Send.skip_reason, func.count())
        .where(Send.campaign_id == campaign_id, Send.state == SendState.SKIPPED.value)
        .group_by(Send.skip_reason)
    ).all()
    deferred = session.execute(
        select(Send.skip_reason, func.count())
        .where(Send.campaign_id == campaign_id, Send.state == SendState.DEFERRED.value)
        .group_by(Send.skip_reason)
    ).all()
    counts = state_counts(session, campaign_id=campaign_id)
    states = {s.value: counts.get(s.value, 0) for s in SendState}
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "status": campaign.status,
        "scheduled_at": campaign.scheduled_at.isoformat() if campaign.scheduled_at else None,
        "total": sum(counts.values()),
        "states": states,
        "skipped": {reason: count for reason, count in sorted(skips)},
        # Why sends wait: frequency_cap (defer mode), send_window, or null (an SMTP retry).
        "deferred": {reason or "retry": count for reason, count in sorted(deferred, key=lambda r: r[0] or "")},
        "progress": campaign_progress(session, campaign=campaign, states=states),
    }


def campaign_progress(session: Session, *, campaign: Campaign, states: dict[str, int],
                      now: datetime | None = None, window: timedelta = timedelta(seconds=60)) -> dict[str, Any]:
    """Sending rate (last minute and overall), what is left, an ETA, and possible duplicates."""
    now = now or _now()
    recent = session.scalar(
        select(func.count()).select_from(Send).where(
            Send.campaign_id == campaign.id, Send.state == SendState.SENT.value, Send.sent_at >= now - window)
    ) or 0
    first_sent, last_sent = session.execute(
        select(func.min(Send.sent_at), func.max(Send.sent_at)).where(
            Send.campaign_id == campaign.id, Send.state == SendState.SENT.value)
    ).one()
    duplicates = session.scalar(
        select(func.count()).select_from(Send).where(Send.campaign_id == campaign.id, Send.possible_duplicate.is_(True))
    ) or 0
    overall = None
    if first_sent is not None and last_sent is not None and last_sent > first_sent:
        first_sent = first_sent if first_sent.tzinfo else first_sent.replace(tzinfo=timezone.utc)
        last_sent = last_sent if last_sent.tzinfo else last_sent.replace(tzinfo=timezone.utc)
        overall = round(states["sent"] / (last_sent - first_sent).total_seconds(), 1)
    remaining = sum(states[s] for s in ("planned", "queued", "sending", "deferred"))
    rate = recent / window.total_seconds()
    eta = round(remaining / rate) if rate > 0 and remaining else None
    done = sum(states[s] for s in ("sent", "failed"))
    return {
        "done": done,
        "remaining": remaining,
        "rate_per_second": round(rate, 1),
        "overall_rate_per_second": overall,
        "eta_seconds": eta,
        "possibly_duplicated": duplicates,
    }


def set_campaign_status(session: Session, *, campaign_id: int, action: str) -> Campaign:
    """Pause, resume, unschedule or cancel a campaign."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    allowed = {
        "pause": ({CampaignStatus.SENDING.value}, CampaignStatus.PAUSED.value),
        "resume": ({CampaignStatus.PAUSED.value}, CampaignStatus.SENDING.value),
        "unschedule": ({CampaignStatus.SCHEDULED.value}, CampaignStatus.DRAFT.value),
        "cancel": ({CampaignStatus.DRAFT.value, CampaignStatus.SCHEDULED.value, CampaignStatus.SENDING.value,
                    CampaignStatus.PAUSED.value}, CampaignStatus.CANCELLED.value),
    }
    sources, target = allowed[action]
    if campaign.status not in sources:
        raise CampaignError(f"cannot {action} campaign {campaign_id}: it is {campaign.status}")
    campaign.status = target
    if action in ("unschedule", "cancel"):
        campaign.scheduled_at = None
    if action == "cancel":
        session.execute(
            update(Send)
            .where(Send.campaign_id == campaign_id,
                   Send.state.in_([SendState.PLANNED.value, SendState.QUEUED.value, SendState.DEFERRED.value]))
            .values(state=SendState.SKIPPED.value, skip_reason="cancelled", updated_at=_now())
        )
    session.flush()
    return campaign


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "CampaignError",
    "TemplateError",
    "create_campaign",
    "plan_campaign",
    "queue_campaign",
    "claim_sends",
    "Deliverer",
    "run_campaign",
    "campaign_status",
    "recover_expired_leases",
    "set_campaign_status",
]


def due_batches(session: Session, *, now: datetime | None = None, batch_size: int = BATCH_SIZE,
                lease: timedelta = LEASE, lost_queued: bool = True) -> list[tuple[int, list[int]]]:
    """(campaign id, send ids) of running campaigns to hand to the queue (again).

    - Deferred sends whose retry time has come, each once: handing one over stamps its
      `updated_at`, and it is handed over again only if a lease period passes without a
      worker taking it (its job was lost).
    - With `lost_queued`, queued sends untouched for a lease period: their job was lost (a
      crash between commit and enqueue, a flushed Redis, a worker killed between taking a job
      and claiming it). Only ask for these when the queue is empty: while it is not, a queued
      send is simply waiting its turn — in a 100,000-mail campaign most sends wait far longer
      than a lease — and enqueueing them all again would flood the queue with no-op jobs.
    Enqueueing a send twice is harmless (claiming is idempotent), only wasteful.
    """
    now = now or _now()
    stale = now - lease
    due = (Send.state == SendState.DEFERRED.value) & (Send.retry_at <= now) & (
        (Send.updated_at < Send.retry_at) | (Send.updated_at < stale))
    if lost_queued:
        due = due | ((Send.state == SendState.QUEUED.value) & (Send.updated_at < stale))
    rows = session.execute(
        select(Send.campaign_id, Send.id)
        .join(Campaign, Campaign.id == Send.campaign_id)
        .where(Campaign.status == CampaignStatus.SENDING.value, due)
        .order_by(Send.campaign_id, Send.id)
    ).all()
    batches: dict[int, list[int]] = {}
    for campaign_id, send_id in rows:
        batches.setdefault(campaign_id, []).append(send_id)
    # Stamp what is handed over, so the next scan does not hand it over again.
    handed = [i for ids in batches.values() for i in ids]
    for chunk in _chunks(handed, 500):
        session.execute(update(Send).where(Send.id.in_(chunk),
                                           Send.state.in_([SendState.QUEUED.value, SendState.DEFERRED.value]))
                        .values(updated_at=now))
    return [
        (campaign_id, ids[i : i + batch_size])
        for campaign_id, ids in batches.items()
        for i in range(0, len(ids), batch_size)
    ]


# ---------------------------------------------------------------- listings (REST API, issue 12)
def list_campaigns(session: Session, *, after: int = 0, limit: int = 50) -> list[Campaign]:
    """Campaigns in id order after a cursor."""
    return list(session.scalars(select(Campaign).where(Campaign.id > after).order_by(Campaign.id).limit(limit)))


def list_sends(
    session: Session, *, campaign_id: int, state: str | None = None, after: int = 0, limit: int = 50
) -> list[Send]:
    """A campaign's sends in id order after a cursor, optionally in one state."""
    query = select(Send).where(Send.campaign_id == campaign_id, Send.id > after).order_by(Send.id).limit(limit)
    if state is not None:
        query = query.where(Send.state == state)
    return list(session.scalars(query))
def queued_batches(session: Session, *, campaign_id: int, batch_size: int = BATCH_SIZE) -> list[list[int]]:
    """The queued sends of one campaign as batches, to enqueue again after a resume."""
    ids = list(session.scalars(
        select(Send.id).where(Send.campaign_id == campaign_id, Send.state == SendState.QUEUED.value).order_by(Send.id)
    ))
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
