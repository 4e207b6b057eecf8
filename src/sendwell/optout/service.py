"""Opting out and back in: every method ends here; writes happen in the caller's transaction.

`unsubscribe_contact` is the single entry point for every opt-out (one-click, page,
preference center, mailto, reply, complaint, bounce, admin, api). It also writes, in the
same transaction, the follow-up work into the outbox (the thank-you mail and the webhook
event), so every method gets them and a rolled-back opt-out gets neither.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sendwell.db.models import (
    SCOPE_ALL,
    Consent,
    ConsentKind,
    Contact,
    Event,
    OutboxMessage,
    Subscription,
    Suppression,
    SuppressionReason,
    Topic,
)
from sendwell.db.rawsql import Statement, read_datetime
from sendwell.i18n import normalise_language
from sendwell.optout import scanner
from sendwell.optout.audit import record_unsubscribed
from sendwell.optout.gate import IN_FLIGHT
from sendwell.outbox.store import enqueue, enqueue_fast
from sendwell.suppression.fast import suppress_fast
from sendwell.suppression.service import lift
from sendwell.webhooks.service import emit_event

METHODS = ("one_click", "page", "preference_center", "mailto", "reply", "complaint", "bounce", "admin", "api",
           "feedback_loop")
# Methods after which no thank-you is sent: a complaint (never mail a complainer), a bounce
# (the address does not work) and a feedback-loop opt-out (RFC 5965 opt-out: the person told
# their mailbox provider, not us, and expects no more mail from us at all).
NO_THANK_YOU = ("complaint", "bounce", "feedback_loop")
REASONS = ("not_relevant", "too_many", "never_signed_up", "situation_changed", "other")
FREQUENCY_TIERS = ("weekly", "monthly", "launches_only")
ALTERNATIVES = ("monthly", "launches_only", "pause_3", "pause_6")
PAUSE_MONTHS = (3, 6)
RESUBSCRIBE_SOURCE = "resubscribe"
RESUBSCRIBE_WORDING = "Undo after unsubscribing: the person clicked “Undo — keep me subscribed”."
DOUBLE_OPT_IN_WORDING = "Double opt-in: the person asked to resubscribe and confirmed by the link mailed to them."
RATE_LIMIT_MINUTES = 10  # at most one magic-link / confirmation mail per address per window
MAX_REASON_TEXT = 1000


class OptOutError(ValueError):
    """A request the opt-out rules refuse (unknown reason, tier, choice…)."""


@dataclass(frozen=True)
class OptOutResult:
    contact_id: int
    is_new: bool  # False when the contact had already opted out (idempotent repeat)
    unsubscribed_at: datetime
    scanner_suspected: bool = False
    email: str = ""
    language: str = ""
    # A mail to this contact was being handed to SMTP when the opt-out committed: the caller
    # waits for it (optout/gate.py) before answering, so no mail leaves after the answer.
    hand_off_pending: bool = False


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later (clamped to the month's end)."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def suppression_reasons(session: Session, *, contact: Contact) -> set[str]:
    """The reasons this address is suppressed for all marketing (empty when it is not)."""
    return set(
        session.scalars(
            select(Suppression.reason).where(
                Suppression.email_hash == contact.email_hash, Suppression.scope == SCOPE_ALL
            )
        )
    )


def is_unsubscribed(session: Session, *, contact: Contact) -> bool:
    """True when the address is suppressed for all marketing, for whatever reason."""
    return bool(suppression_reasons(session, contact=contact))


def _lock_contact(session: Session, contact_id: int) -> Contact | None:
    # On PostgreSQL the row lock orders an opt-out and a mail's hand-off to SMTP for this
    # contact (see sendwell.optout.gate). SQLite already serialises writers (BEGIN IMMEDIATE).
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(select(Contact).where(Contact.id == contact_id).with_for_update())
    return session.get(Contact, contact_id)


def unsubscribe_contact(
    session: Session,
    *,
    contact_id: int,
    method: str,
    campaign_id: int | None = None,
    ip: str = "",
    user_agent: str = "",
    now: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> OptOutResult | None:
    """Suppress all marketing to a contact; None if the contact no longer exists.

    Idempotent: a repeat keeps the first suppression and records no second event
    (COMPLIANCE rule 7). The caller commits before answering the person (rule 10).
    """
    if method not in METHODS:
        raise ValueError(f"unknown opt-out method {method!r}")
    now = _now(now)
    # Driver-level SQL (db/rawsql.py), each statement beside the table it writes: this is the
    # hottest write and it sits inside the one-click request, before the 200.
    row = (_SQL_CONTACT_PG if session.get_bind().dialect.name == "postgresql" else _SQL_CONTACT).run(
        session, id=contact_id, camp=campaign_id)
    if not row:
        return None
    email, email_hash, language, campaign_exists, sent_at = row[0]
    if campaign_id is not None and not campaign_exists:
        campaign_id = None  # the campaign was deleted since the mail went out; the opt-out stands
    is_new = suppress_fast(session, email_hash=email_hash, reason=SuppressionReason.UNSUBSCRIBE.value,
                           contact_id=contact_id, campaign_id=campaign_id, now=now)
    # After the lock: a hand-off that committed its in-flight mark before it (optout/gate.py).
    hand_off = bool(IN_FLIGHT.run(session, cid=contact_id))
    suspected = False
    if is_new:
        event_data: dict[str, Any] = dict(data or {})
        if method == "one_click":
            # Flag, never ignore: a scanner's POST still unsubscribes (RFC 8058 gives no way
            # to tell), but the event is marked for review in the reasons report.
            signals = scanner.assess(ip=ip, user_agent=user_agent, now=now, sent_at=read_datetime(sent_at))
            suspected = scanner.is_suspected(signals)
            event_data.update(scanner_suspected=suspected, scanner_signals=signals)
            if suspected:
                event_data["review"] = True
        # What the person had chosen, so an undo restores it exactly.
        event_data["topics"] = sorted(r[0] for r in _SQL_UNSUBSCRIBE_TOPICS.run(session, cid=contact_id, now=now))
        # GDPR Art 7(3): the opt-out withdraws every consent on record.
        _SQL_WITHDRAW.run(session, cid=contact_id, now=now)
        record_unsubscribed(session, contact_id=contact_id, campaign_id=campaign_id, method=method, ip=ip,
                            user_agent=user_agent, data=event_data, now=now)
        if method not in NO_THANK_YOU:
            # Never sent twice: the dedupe key is unique, one thank-you per contact, ever.
            enqueue_fast(session, kind="thank_you", dedupe_key=f"thank_you:{contact_id}", contact_id=contact_id,
                         payload={"campaign_id": campaign_id}, now=now)
        enqueue_fast(session, kind="event", contact_id=contact_id, now=now, payload={
            "event": "contact.unsubscribed", "contact_id": contact_id, "email": email,
            "occurred_at": now.isoformat(),
            "data": {"method": method, "campaign_id": campaign_id, "scanner_suspected": suspected}})
        first = now
    else:
        first = session.scalar(
            select(Event.occurred_at)
            .where(Event.contact_id == contact_id, Event.kind == "unsubscribed")
            .order_by(Event.id.desc())
            .limit(1)
        )
    # Objects already loaded in the ORM identity map must not hide what the SQL above changed.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Consent | Subscription) and obj.contact_id == contact_id:
            session.expire(obj)
    return OptOutResult(contact_id=contact_id, is_new=is_new, unsubscribed_at=first or now,
                        scanner_suspected=suspected, email=email, language=language, hand_off_pending=hand_off)


_CONTACT = ("SELECT c.email, c.email_hash, c.language, (SELECT 1 FROM campaigns WHERE id = :camp), "
            "(SELECT s.sent_at FROM sends s WHERE s.campaign_id = :camp AND s.contact_id = c.id) "
            "FROM contacts c WHERE c.id = :id")
_SQL_CONTACT = Statement(_CONTACT)
# On PostgreSQL the row lock orders an opt-out and a mail's hand-off for this contact
# (sendwell.optout.gate); SQLite already serialises writers (BEGIN IMMEDIATE).
_SQL_CONTACT_PG = Statement(_CONTACT + " FOR UPDATE OF c")
_SQL_UNSUBSCRIBE_TOPICS = Statement(
    "UPDATE subscriptions SET status = 'unsubscribed', updated_at = :now "
    "WHERE contact_id = :cid AND status = 'subscribed' RETURNING topic_id")
_SQL_WITHDRAW = Statement("UPDATE consents SET withdrawn_at = :now WHERE contact_id = :cid AND withdrawn_at IS NULL")


def _webhook(session: Session, event: str, contact: Contact, now: datetime, data: dict[str, Any]) -> None:
    emit_event(session, event_type=event, contact_id=contact.id, email=contact.email, data=data, now=now)


def _latest_unsubscribe(session: Session, contact_id: int) -> Event | None:
    return session.scalar(
        select(Event).where(Event.contact_id == contact_id, Event.kind == "unsubscribed")
        .order_by(Event.id.desc()).limit(1)
    )


def record_reason(
    session: Session, *, contact_id: int, reason: str, text: str = "", campaign_id: int | None = None,
    now: datetime | None = None,
) -> Event:
    """Store the optional survey answer of an unsubscribed contact; one answer per opt-out."""
    if reason not in REASONS:
        raise OptOutError(f"unknown reason {reason!r}; expected one of {', '.join(REASONS)}")
    optout = _latest_unsubscribe(session, contact_id)
    if optout is None:
        raise OptOutError("this contact has not unsubscribed; there is nothing to give a reason for")
    data = {"reason": reason, "text": " ".join(text.split())[:MAX_REASON_TEXT], "unsubscribed_event": optout.id}
    existing = session.scalar(
        select(Event).where(Event.contact_id == contact_id, Event.kind == "unsubscribe_reason")
        .order_by(Event.id.desc()).limit(1)
    )
    if existing is not None and existing.data.get("unsubscribed_event") == optout.id:
        existing.data = data  # a changed answer replaces the first: one per opt-out
        existing.occurred_at = _now(now)
        session.flush()
        return existing
    event = Event(kind="unsubscribe_reason", contact_id=contact_id, method=optout.method,
                  campaign_id=campaign_id or optout.campaign_id, data=data, occurred_at=_now(now))
    session.add(event)
    session.flush()
    return event


def reasons_breakdown(session: Session, *, campaign_id: int | None = None) -> dict[str, int]:
    """How many leavers gave each reason (latest answer per opt-out)."""
    query = select(Event.data).where(Event.kind == "unsubscribe_reason")
    if campaign_id is not None:
        query = query.where(Event.campaign_id == campaign_id)
    counts = {reason: 0 for reason in REASONS}
    for data in session.scalars(query):
        if data.get("reason") in counts:
            counts[data["reason"]] += 1
    return counts


@dataclass(frozen=True)
class ResubscribeResult:
    status: str  # resubscribed | needs_confirmation | not_unsubscribed


def _restore(session: Session, contact: Contact, *, wording: str, method: str, ip: str, user_agent: str,
             now: datetime, lifted: list[str]) -> None:
    # New express consent, recorded like any other (GDPR Art 7(1) proof), source `resubscribe`.
    session.add(Consent(contact_id=contact.id, kind=ConsentKind.EXPRESS.value, source=RESUBSCRIBE_SOURCE,
                        obtained_at=now, ip=ip[:64], wording=wording))
    optout = _latest_unsubscribe(session, contact.id)
    topics = optout.data.get("topics") if optout is not None else None
    restore = update(Subscription).where(Subscription.contact_id == contact.id)
    if topics is not None:
        restore = restore.where(Subscription.topic_id.in_(topics))
    session.execute(restore.values(status="subscribed", updated_at=now))
    # A thank-you not yet sent is no longer true: drop it (its key stays, so none is ever sent).
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.contact_id == contact.id, OutboxMessage.kind == "thank_you",
               OutboxMessage.status == "pending")
        .values(status="skipped", last_error="resubscribed before it was sent")
    )
    # Coming back is the person's own action: it counts as engagement for the sunset flow.
    if contact.last_engaged_at is None or contact.last_engaged_at < now:
        contact.last_engaged_at = now
    session.add(Event(kind="resubscribed", contact_id=contact.id, method=method, ip=ip[:64],
                      user_agent=user_agent[:500], occurred_at=now, data={"lifted": lifted}))
    _webhook(session, "contact.resubscribed", contact, now, {"method": method})
    session.flush()


def resubscribe_contact(
    session: Session, *, contact_id: int, ip: str = "", user_agent: str = "", now: datetime | None = None
) -> ResubscribeResult:
    """Undo an unsubscribe by the person's own click; a complaint needs a double opt-in instead."""
    now = _now(now)
    contact = _lock_contact(session, contact_id)
    if contact is None:
        raise OptOutError("unknown contact")
    reasons = suppression_reasons(session, contact=contact)
    if SuppressionReason.COMPLAINT.value in reasons or _complained_since_confirmation(session, contact.id):
        # RFC 5965 / COMPLIANCE rule 28: only a fresh double opt-in lifts a complaint.
        return ResubscribeResult("needs_confirmation")
    # A sunset (docs/hygiene.md) is lifted the same way: only by the person's own action.
    liftable = {SuppressionReason.UNSUBSCRIBE.value, SuppressionReason.SUNSET.value}
    lifted = sorted(reasons & liftable)
    if not lifted:
        return ResubscribeResult("not_unsubscribed")
    lift(session, email_hash=contact.email_hash, reasons=tuple(lifted))
    _restore(session, contact, wording=RESUBSCRIBE_WORDING, method="undo", ip=ip, user_agent=user_agent,
             now=now, lifted=lifted)
    return ResubscribeResult("resubscribed")


def _complained_since_confirmation(session: Session, contact_id: int) -> bool:
    # A complaint that arrives after an opt-out leaves the suppression's first reason
    # ("unsubscribe") in place, so the `complained` event is checked too; a double opt-in
    # confirmed after it clears it.
    complained = session.scalar(select(func.max(Event.id)).where(Event.contact_id == contact_id,
                                                                 Event.kind == "complained"))
    if complained is None:
        return False
    confirmed = session.scalar(select(func.max(Event.id)).where(
        Event.contact_id == contact_id, Event.kind == "resubscribed", Event.method == "double_opt_in"))
    return confirmed is None or confirmed < complained


def _rate_key(prefix: str, contact_id: int, now: datetime) -> str:
    bucket = int(now.timestamp() // (RATE_LIMIT_MINUTES * 60))
    return f"{prefix}:{contact_id}:{bucket}"


def request_confirmation(session: Session, *, contact_id: int, now: datetime | None = None) -> bool:
    """Queue a double opt-in mail to the contact's own address (rate-limited); True if queued."""
    now = _now(now)
    return enqueue(session, kind="confirm", contact_id=contact_id, dedupe_key=_rate_key("confirm", contact_id, now),
                   now=now)


def confirm_double_opt_in(
    session: Session, *, contact_id: int, ip: str = "", user_agent: str = "", now: datetime | None = None
) -> ResubscribeResult:
    """The person confirmed by the mailed link: lift their complaint and unsubscribe suppressions."""
    now = _now(now)
    contact = _lock_contact(session, contact_id)
    if contact is None:
        raise OptOutError("unknown contact")
    liftable = (SuppressionReason.COMPLAINT.value, SuppressionReason.UNSUBSCRIBE.value, SuppressionReason.SUNSET.value)
    lifted = sorted(suppression_reasons(session, contact=contact) & set(liftable))
    if not lifted:
        return ResubscribeResult("not_unsubscribed")
    # Hard bounces, erasure and manual suppressions stay: confirming cannot make a dead
    # address work or undo an operator's decision.
    lift(session, email_hash=contact.email_hash, reasons=liftable)
    _restore(session, contact, wording=DOUBLE_OPT_IN_WORDING, method="double_opt_in", ip=ip,
             user_agent=user_agent, now=now, lifted=lifted)
    return ResubscribeResult("resubscribed")


def update_preferences(
    session: Session,
    *,
    contact_id: int,
    method: str,
    topics: list[int] | None = None,
    frequency: str | None = None,
    pause_months: int | None = None,
    language: str | None = None,
    ip: str = "",
    user_agent: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Apply the person's choices (topics, frequency tier, pause, language); returns what changed."""
    now = _now(now)
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise OptOutError("unknown contact")
    changes: dict[str, Any] = {}
    if frequency is not None:
        if frequency not in FREQUENCY_TIERS:
            raise OptOutError(f"unknown frequency {frequency!r}; expected one of {', '.join(FREQUENCY_TIERS)}")
        if contact.frequency_tier != frequency:
            changes["frequency_tier"] = [contact.frequency_tier, frequency]
            contact.frequency_tier = frequency
    if pause_months is not None:
        if pause_months not in (0, *PAUSE_MONTHS):
            raise OptOutError(f"pause must be 0, 3 or 6 months, not {pause_months}")
        until = add_months(now, pause_months) if pause_months else None
        before = contact.paused_until.isoformat() if contact.paused_until else None
        if pause_months or before:
            changes["paused_until"] = [before, until.isoformat() if until else None]
            contact.paused_until = until
    if language is not None:
        chosen = normalise_language(language)
        if chosen is None:
            raise OptOutError(f"unsupported language {language!r}")
        stored = "zh" if chosen == "zh_Hans" else chosen
        if contact.language != stored:
            changes["language"] = [contact.language, stored]
            contact.language = stored
    if topics is not None:
        changes.update(_set_topics(session, contact, set(topics), now))
    if changes:
        # The person's own choice is a sign of life: it counts as engagement for the sunset
        # flow (docs/hygiene.md), as a click does.
        if contact.last_engaged_at is None or contact.last_engaged_at < now:
            contact.last_engaged_at = now
        session.add(Event(kind="preferences_changed", contact_id=contact.id, method=method, ip=ip[:64],
                          user_agent=user_agent[:500], occurred_at=now, data={"changes": changes}))
        _webhook(session, "contact.preferences_changed", contact, now, {"method": method, "changes": changes})
    session.flush()
    return changes


def _set_topics(session: Session, contact: Contact, wanted: set[int], now: datetime) -> dict[str, Any]:
    known = set(session.scalars(select(Topic.id)))
    unknown = wanted - known
    if unknown:
        raise OptOutError(f"unknown topic id(s): {', '.join(map(str, sorted(unknown)))}")
    rows = {s.topic_id: s for s in session.scalars(select(Subscription).where(Subscription.contact_id == contact.id))}
    added, removed = [], []
    for topic_id in known:
        row = rows.get(topic_id)
        is_on = row is not None and row.status == "subscribed"
        if topic_id in wanted and not is_on:
            if row is None:
                session.add(Subscription(contact_id=contact.id, topic_id=topic_id, status="subscribed"))
            else:
                row.status, row.updated_at = "subscribed", now
            added.append(topic_id)
        elif topic_id not in wanted and is_on:
            row.status, row.updated_at = "unsubscribed", now  # type: ignore[union-attr]
            removed.append(topic_id)
    out: dict[str, Any] = {}
    if added:
        out["topics_added"] = sorted(added)
    if removed:
        out["topics_removed"] = sorted(removed)
    return out


def apply_alternative(
    session: Session, *, contact_id: int, choice: str, ip: str = "", user_agent: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """One of the unsubscribe page's alternatives: fewer mails, launches only, or a pause."""
    if choice not in ALTERNATIVES:
        raise OptOutError(f"unknown choice {choice!r}; expected one of {', '.join(ALTERNATIVES)}")
    if choice.startswith("pause_"):
        kwargs: dict[str, Any] = {"pause_months": int(choice.removeprefix("pause_"))}
    else:
        kwargs = {"frequency": choice}
    return update_preferences(session, contact_id=contact_id, method="page", ip=ip, user_agent=user_agent,
                              now=now, **kwargs)


def request_magic_link(session: Session, *, email: str, now: datetime | None = None) -> None:
    """Queue a preference-center link to this address if it is on the list; says nothing either way."""
    now = _now(now)
    address = email.strip()
    if not address or "@" not in address or len(address) > 320:
        return
    contact = session.scalar(select(Contact).where(func.lower(Contact.email) == address.lower()).limit(1))
    if contact is not None:
        enqueue(session, kind="magic_link", contact_id=contact.id,
                dedupe_key=_rate_key("magic", contact.id, now), now=now)

