"""Act on classified feedback: suppress, alert, and store every decision as an event with its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db.models import (
    SCOPE_ALL,
    Alert,
    Contact,
    Event,
    Send,
    SendState,
    Suppression,
    SuppressionReason,
)
from sendwell.delivery.verp import read_verp, verp_detail
from sendwell.feedback.classify.result import (
    AUTO_REPLY,
    COMPLAINT,
    HARD,
    OTHER,
    SOFT,
    UNSUBSCRIBE,
    Classification,
)
from sendwell.feedback.classify.smtp_reply import classify_smtp_reply
from sendwell.optout.service import METHODS, unsubscribe_contact
from sendwell.suppression.service import hash_email, suppress
from sendwell.webhooks.service import emit_alert, emit_event

# COMPLIANCE row 27: suppress after this many consecutive soft bounces on different sends.
SOFT_BOUNCE_LIMIT = 3
# The opt-out method of an ARF opt-out report. Until the opt-out context lists it among its
# methods, such reports are recorded under "complaint" (the method of every other FBL report);
# the suppression reason is "unsubscribe" either way.
FEEDBACK_LOOP = "feedback_loop" if "feedback_loop" in METHODS else "complaint"
# Positive evidence that a mailbox received mail; it ends a soft-bounce streak (see docs/feedback.md).
DELIVERY_CONFIRMED = "delivery_confirmed"


@dataclass(frozen=True)
class FeedbackOutcome:
    """What record_feedback decided for one recipient of one classification."""

    action: str  # hard_bounce | soft_bounce | delay | sender_fault | complaint | unsubscribe |
    #              auto_reply | delivery_confirmed | duplicate | unmatched | forged | ignored
    recipient: str | None = None
    contact_id: int | None = None
    send_id: int | None = None
    campaign_id: int | None = None
    matched_by: str | None = None  # verp | message_id | address
    suppressed: str | None = None  # the suppression reason, when this decision suppressed


@dataclass
class _Target:
    contact: Contact
    send: Send | None
    matched_by: str
    recipient: str | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _bracketed(message_id: str) -> str:
    value = message_id.strip()
    return value if value.startswith("<") else f"<{value}>"


def _latest_send(session: Session, contact_id: int) -> Send | None:
    # A bounce found only by address most likely answers the contact's latest mail.
    return session.scalars(
        select(Send)
        .where(Send.contact_id == contact_id, Send.sent_at.is_not(None))
        .order_by(Send.sent_at.desc(), Send.id.desc())
        .limit(1)
    ).first()


def _find_targets(
    session: Session,
    classification: Classification,
    settings: Settings,
    verp_detail: str | None,
    match_by_address: bool,
) -> list[_Target] | str:
    """The contacts a classification is about, or "forged" when its VERP token fails its HMAC."""
    recipient = classification.recipients[0] if classification.recipients else None
    detail = verp_detail if verp_detail is not None else classification.verp_token
    forged = False
    if detail:
        # VERP first: quick, exact, and the HMAC means only a real send can be named.
        send_id = read_verp(settings.secret_keys, detail)
        if send_id is not None:
            send = session.get(Send, send_id)
            contact = session.get(Contact, send.contact_id) if send else None
            if send is None or contact is None:
                return []
            return [_Target(contact, send, "verp", recipient)]
        forged = True
    if classification.original_message_id:
        ids = {_bracketed(classification.original_message_id), classification.original_message_id.strip()}
        send = session.scalars(select(Send).where(Send.message_id.in_(ids)).limit(1)).first()
        if send is not None:
            contact = session.get(Contact, send.contact_id)
            if contact is not None:
                return [_Target(contact, send, "message_id", recipient)]
    if forged:
        # A report that names a VERP address we never signed may not suppress anyone by address:
        # that is exactly the forged-bounce attack the HMAC exists to stop.
        return "forged"
    if not match_by_address:
        return []
    targets: list[_Target] = []
    for address in classification.recipients:
        contact = session.scalars(
            select(Contact).where(Contact.email_hash == hash_email(settings.pepper, address))
        ).first()
        if contact is not None and all(t.contact.id != contact.id for t in targets):
            targets.append(_Target(contact, _latest_send(session, contact.id), "address", address))
    return targets


def _is_duplicate(session: Session, contact_id: int, raw_ref: str) -> bool:
    # The same report seen twice (ingest re-run, webhook retry) must not count twice.
    if not raw_ref:
        return False
    return (
        session.scalar(
            select(Event.id)
            .where(Event.contact_id == contact_id, Event.data["raw_ref"].as_string() == raw_ref)
            .limit(1)
        )
        is not None
    )


def record_feedback(
    session: Session,
    *,
    classification: Classification,
    settings: Settings,
    raw_ref: str = "",
    source: str = "mail",
    verp_detail: str | None = None,
    match_by_address: bool = True,
    now: datetime | None = None,
) -> list[FeedbackOutcome]:
    """Apply the bounce / complaint / auto-reply policies to one classification; flushes, never commits.

    The send is found by VERP (`verp_detail`, else the classifier's token), else by the
    original Message-ID, else by recipient address (unless `match_by_address` is off).
    """
    now = now or _now()
    c = classification
    targets = _find_targets(session, c, settings, verp_detail, match_by_address)
    if targets == "forged":
        return [FeedbackOutcome("forged", recipient=c.recipients[0] if c.recipients else None)]
    if not targets:
        return [FeedbackOutcome("unmatched", recipient=r) for r in (c.recipients or (None,))]
    outcomes = []
    for target in targets:
        assert isinstance(target, _Target)
        # One report per contact at a time (PostgreSQL row lock; SQLite's BEGIN IMMEDIATE already
        # serialises writers): a webhook retry racing the original, or two soft bounces racing
        # each other, must see each other's events for the duplicate check and the streak count.
        session.execute(select(Contact.id).where(Contact.id == target.contact.id).with_for_update())
        if _is_duplicate(session, target.contact.id, raw_ref):
            outcomes.append(_outcome("duplicate", target))
            continue
        evidence = {
            "classification": c.kind,
            "category": c.category,
            "status": c.status,
            "reason": c.reason,
            "reply_code": c.reply_code,
            "source": source,
            "raw_ref": raw_ref,
            "matched_by": target.matched_by,
            "recipient": target.recipient,
        }
        outcomes.append(_apply(session, c, target, evidence, now))
    session.flush()
    return outcomes


def smtp_refusal_hook(settings: Settings) -> Any:
    """The delivery engine's failure hook: a permanent refusal in our own SMTP session is a bounce."""
    def on_refusal(session: Session, *, send_id: int, code: int, message: str) -> None:
        email = session.scalar(select(Contact.email).join(Send, Send.contact_id == Contact.id)
                               .where(Send.id == send_id))
        record_feedback(session, classification=classify_smtp_reply(email or "", code, message), settings=settings,
                        raw_ref=f"smtp:{send_id}", source="smtp", verp_detail=verp_detail(settings.secret_keys, send_id))

    return on_refusal


def _outcome(action: str, target: _Target, suppressed: str | None = None) -> FeedbackOutcome:
    return FeedbackOutcome(
        action,
        recipient=target.recipient or target.contact.email,
        contact_id=target.contact.id,
        send_id=target.send.id if target.send else None,
        campaign_id=target.send.campaign_id if target.send else None,
        matched_by=target.matched_by,
        suppressed=suppressed,
    )


def _event(session: Session, kind: str, target: _Target, data: dict[str, Any], now: datetime, method: str = "") -> None:
    session.add(
        Event(
            kind=kind,
            contact_id=target.contact.id,
            campaign_id=target.send.campaign_id if target.send else None,
            send_id=target.send.id if target.send else None,
            method=method,
            data=data,
            occurred_at=now,
        )
    )


def _suppress(session: Session, target: _Target, reason: str, evidence: dict[str, Any], now: datetime,
              **extra: Any) -> bool:
    is_new = suppress(
        session,
        email_hash=target.contact.email_hash,
        reason=reason,
        scope=SCOPE_ALL,
        contact_id=target.contact.id,
        campaign_id=target.send.campaign_id if target.send else None,
    )
    if is_new:
        _event(session, "suppressed", target, _suppressed_data(reason, evidence, **extra), now)
    return is_new


def _suppressed_data(reason: str, evidence: dict[str, Any], **extra: Any) -> dict[str, Any]:
    # The vocabulary's "reason" here is the suppression reason; the classifier's goes to "detail".
    return {**evidence, "detail": evidence.get("reason"), **extra, "reason": reason}


def _apply(session: Session, c: Classification, target: _Target, evidence: dict[str, Any],
           now: datetime) -> FeedbackOutcome:
    bounce = {"kind": c.kind, "status": c.status, "reason": c.reason, "delay": c.is_delay}
    if c.kind in (HARD, SOFT) and c.is_delay:
        # COMPLIANCE row 27: Action: delayed means the MTA is still trying; never suppress on it.
        _event(session, "bounced", target, {**evidence, **bounce, "kind": SOFT}, now)
        if c.is_sender_fault:
            _raise_alert(session, c, target, now)
        return _outcome("delay", target)
    if c.kind in (HARD, SOFT) and c.is_sender_fault:
        # COMPLIANCE row 26: 5.7.x policy / authentication rejections are the sender's fault:
        # alert the operator and leave the recipient alone.
        _event(session, "sender_fault", target, evidence, now)
        _raise_alert(session, c, target, now)
        return _outcome("sender_fault", target)
    if c.kind == HARD:
        _event(session, "bounced", target, {**evidence, **bounce}, now)
        suppressed = _suppress(session, target, SuppressionReason.HARD_BOUNCE.value, evidence, now)
        if target.send is not None and target.send.state == SendState.SENT.value:
            target.send.state = SendState.FAILED.value
            target.send.last_error = f"bounced: {c.status or c.reply_code or ''} {c.reason}".strip()[:1000]
            target.send.updated_at = now
        outcome = _outcome("hard_bounce", target, SuppressionReason.HARD_BOUNCE.value if suppressed else None)
        _bounce_webhook(session, c, outcome, target, now)
        return outcome
    if c.kind == SOFT:
        _event(session, "bounced", target, {**evidence, **bounce}, now)
        session.flush()
        streak = soft_bounce_streak(session, contact=target.contact)
        outcome = _outcome("soft_bounce", target)
        if len(streak) >= SOFT_BOUNCE_LIMIT:
            reason = SuppressionReason.SOFT_BOUNCE_STREAK.value
            if _suppress(session, target, reason, evidence, now, sends=streak):
                outcome = _outcome("soft_bounce", target, reason)
        _bounce_webhook(session, c, outcome, target, now)
        return outcome
    if c.category == UNSUBSCRIBE:
        return _feedback_unsubscribe(session, c, target, evidence, now)
    if c.kind == COMPLAINT:
        return _complaint(session, c, target, evidence, now)
    if c.kind == AUTO_REPLY:
        _event(session, "auto_reply", target, evidence, now)
        return _outcome("auto_reply", target)
    if c.kind == OTHER and _is_delivery(c) and soft_bounce_streak(session, contact=target.contact):
        # Only worth storing while a streak is open: it is what ends the streak.
        _event(session, DELIVERY_CONFIRMED, target, evidence, now)
        return _outcome(DELIVERY_CONFIRMED, target)
    return _outcome("ignored", target)


def _bounce_webhook(session: Session, c: Classification, outcome: FeedbackOutcome, target: _Target,
                    now: datetime) -> None:
    # In the bounce's own transaction: a rolled-back report tells nobody (delays and
    # sender-fault rejections are not bounces of the recipient and send no contact.bounced).
    emit_event(session, event_type="contact.bounced", contact_id=target.contact.id, email=target.contact.email,
               now=now, data={"kind": c.kind, "status": c.status, "reason": c.reason,
                              "campaign_id": outcome.campaign_id, "send_id": outcome.send_id,
                              "suppressed": outcome.suppressed})


def _is_delivery(c: Classification) -> bool:
    # RFC 3464 §2.3.3: only "delivered" reaches the mailbox; "relayed" and "expanded" do not.
    return c.reason == "delivered" or c.reason.startswith("delivery succeeded (delivered")


def _feedback_unsubscribe(session: Session, c: Classification, target: _Target, evidence: dict[str, Any],
                          now: datetime) -> FeedbackOutcome:
    # RFC 5965 opt-out: the person asked their mailbox provider to stop our mail. That is an
    # unsubscribe, not an abuse report: no complaint reason, no complaint event.
    result = unsubscribe_contact(
        session,
        contact_id=target.contact.id,
        method=FEEDBACK_LOOP,
        campaign_id=target.send.campaign_id if target.send else None,
        now=now,
        data={"feedback_type": c.feedback_type, "source": evidence.get("source"), "raw_ref": evidence.get("raw_ref")},
    )
    suppressed = SuppressionReason.UNSUBSCRIBE.value if result is not None and result.is_new else None
    return _outcome("unsubscribe", target, suppressed)


def _complaint(session: Session, c: Classification, target: _Target, evidence: dict[str, Any],
               now: datetime) -> FeedbackOutcome:
    _event(session, "complained", target, {"feedback_type": c.feedback_type or "abuse", **evidence}, now)
    # Before the opt-out's own contact.unsubscribed, so a receiver learns the cause first.
    emit_event(session, event_type="contact.complained", contact_id=target.contact.id, email=target.contact.email,
               now=now, data={"feedback_type": c.feedback_type or "abuse", "source": evidence.get("source"),
                              "campaign_id": target.send.campaign_id if target.send else None,
                              "send_id": target.send.id if target.send else None})
    # Flushed first: the opt-out below must see the complaint (it sends no thank-you mail
    # after one, and Undo then needs a fresh double opt-in).
    session.flush()
    # Through the single opt-out entry point, so the audit (unsubscribed event, consents
    # withdrawn, subscriptions ended) is the same as for every other method…
    unsubscribe_contact(
        session,
        contact_id=target.contact.id,
        method="complaint",
        campaign_id=target.send.campaign_id if target.send else None,
        now=now,
    )
    # …then the reason is raised to "complaint": it is the strongest one (COMPLIANCE row 28:
    # only a new double opt-in lifts it), so it replaces unsubscribe / bounce / sunset / manual.
    promoted = session.execute(
        update(Suppression)
        .where(
            Suppression.email_hash == target.contact.email_hash,
            Suppression.scope == SCOPE_ALL,
            Suppression.reason != SuppressionReason.COMPLAINT.value,
        )
        .values(reason=SuppressionReason.COMPLAINT.value)
        .returning(Suppression.id)
    ).first()
    reason = SuppressionReason.COMPLAINT.value
    if promoted is not None:
        _event(session, "suppressed", target, _suppressed_data(reason, evidence), now)
        return _outcome("complaint", target, reason)
    return _outcome("complaint", target)


def soft_bounce_streak(session: Session, *, contact: Contact) -> list[int]:
    """The distinct sends that soft-bounced since the last proof that the mailbox receives mail.

    Proof is an engagement (`contacts.last_engaged_at`) or a `delivery_confirmed` event (a
    "delivered" DSN or provider delivery notice). A later send with no bounce is not proof:
    bounces can arrive days late. Delays and sender-fault rejections are not soft bounces.
    """
    proof = session.scalar(
        select(Event.occurred_at)
        .where(Event.contact_id == contact.id, Event.kind == DELIVERY_CONFIRMED)
        .order_by(Event.occurred_at.desc())
        .limit(1)
    )
    if contact.last_engaged_at is not None and (proof is None or contact.last_engaged_at > proof):
        proof = contact.last_engaged_at
    query = select(Event.send_id, Event.data, Event.occurred_at).where(
        Event.contact_id == contact.id, Event.kind == "bounced"
    )
    if proof is not None:
        query = query.where(Event.occurred_at > proof)
    sends: list[int] = []
    for send_id, data, _ in session.execute(query.order_by(Event.id)):
        data = data or {}
        if data.get("kind") != SOFT or data.get("delay") or send_id is None:
            continue
        if send_id not in sends:
            sends.append(send_id)
    return sends


def _raise_alert(session: Session, c: Classification, target: _Target, now: datetime) -> None:
    """One open alert per campaign and status; repeats raise its count instead of adding rows."""
    campaign_id = target.send.campaign_id if target.send else None
    key = c.status or c.reply_code or c.reason
    domain = (target.recipient or target.contact.email).rpartition("@")[2]
    open_alerts = session.scalars(
        select(Alert).where(
            Alert.kind == "sender_fault",
            Alert.resolved_at.is_(None),
            Alert.campaign_id.is_(None) if campaign_id is None else Alert.campaign_id == campaign_id,
        )
    ).all()
    for alert in open_alerts:
        data = dict(alert.data or {})
        if data.get("key") == key:
            domains = list(data.get("domains", []))
            if domain not in domains and len(domains) < 20:
                domains.append(domain)
            data.update(count=int(data.get("count", 1)) + 1, domains=domains, last_at=now.isoformat())
            alert.data = data  # a new dict: JSON columns do not track in-place changes
            return
    alert = Alert(
        kind="sender_fault",
        severity="critical" if (c.status or c.reply_code or "").startswith("5") else "warning",
        campaign_id=campaign_id,
        message=(
            f"Receiving servers reject our mail: {c.status or c.reply_code or 'no status'} "
            f"{c.reason}. Check SPF, DKIM and DMARC alignment, sending IP reputation and rate; "
            "recipients were not suppressed."
        ),
        data={"key": key, "status": c.status, "reply_code": c.reply_code, "reason": c.reason,
              "count": 1, "domains": [domain], "first_at": now.isoformat(), "last_at": now.isoformat()},
        created_at=now,
    )
    session.add(alert)
    session.flush()  # the id, for the webhook
    emit_alert(session, alert=alert, now=now)
