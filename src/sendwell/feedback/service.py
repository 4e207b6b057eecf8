"""Act on classified feedback: suppress, alert, and store every decision as an event with its evidence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db.models import (
    SCOPE_ALL,
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
    DELIVERED,
    HARD,
    OTHER,
    SOFT,
    UNSUBSCRIBE,
    Classification,
)
from sendwell.feedback.classify.smtp_reply import classify_smtp_reply
from sendwell.feedback.review import FORGED_VERP, NOT_TIED, RECIPIENT_MISMATCH, store_review
from sendwell.feedback.signals import authentication_fix, fix_for, provider_for
from sendwell.insight.alerts import raise_sender_alert
from sendwell.optout.service import unsubscribe_contact
from sendwell.suppression.service import hash_email, suppress
from sendwell.webhooks.service import emit_event

# COMPLIANCE row 27: suppress after this many consecutive soft bounces on different sends.
SOFT_BOUNCE_LIMIT = 3
# The opt-out method of an ARF opt-out report (RFC 5965 Feedback-Type: opt-out).
FEEDBACK_LOOP = "feedback_loop"
# Positive evidence that a mailbox received mail; it ends a soft-bounce streak (see docs/feedback.md).
DELIVERY_CONFIRMED = "delivery_confirmed"
# Untied reports of these categories say nothing worth a person's time (delivery notices, mail
# that is no report at all); every other untied report goes to the review list.
_NOT_REVIEWED = frozenset({OTHER, DELIVERED})


@dataclass(frozen=True)
class FeedbackOutcome:
    """What record_feedback decided for one recipient of one classification."""

    action: str  # hard_bounce | soft_bounce | delay | sender_fault | complaint | unsubscribe |
    #              auto_reply | delivery_confirmed | duplicate | unmatched | forged | ignored |
    #              sender_alert
    recipient: str | None = None
    contact_id: int | None = None
    send_id: int | None = None
    campaign_id: int | None = None
    matched_by: str | None = None  # verp | message_id
    suppressed: str | None = None  # the suppression reason, when this decision suppressed
    review_id: int | None = None  # the review-list row, when the report was kept for a person


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


def _find_targets(
    session: Session,
    classification: Classification,
    settings: Settings,
    verp_detail: str | None,
    references: Sequence[str],
) -> list[_Target] | str:
    """The contacts a report is about, or why it cannot be tied to a mail we sent (review.NOT_TIED…).

    Only evidence of a real send counts: a VERP token whose HMAC verifies, or one of our
    Message-IDs (random hex, so quoting one proves having received that mail) in the returned
    headers, sent to the report's own recipient. The recipient's address alone proves nothing:
    anyone can mail a bounce naming any address to the bare bounce address.
    """
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
    ids = set()
    for value in (classification.original_message_id, *references):
        if value and value.strip():
            ids.update((_bracketed(value), value.strip()))
    targets: list[_Target] = []
    mismatch = False
    if ids:
        wanted = {hash_email(settings.pepper, a) for a in classification.recipients}
        for send in session.scalars(select(Send).where(Send.message_id.in_(sorted(ids)[:100])).order_by(Send.id)):
            contact = session.get(Contact, send.contact_id)
            if contact is None or any(t.contact.id == contact.id for t in targets):
                continue
            # A report that names recipients must name the one this send went to: a Message-ID
            # seen by one person must not let them act on another.
            if wanted and contact.email_hash not in wanted:
                mismatch = True
                continue
            targets.append(_Target(contact, send, "message_id", recipient or contact.email))
    if targets:
        return targets
    if forged:
        return FORGED_VERP
    return RECIPIENT_MISMATCH if mismatch else NOT_TIED


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
    references: Sequence[str] = (),
    raw: bytes | None = None,
    reporter: str | None = None,
    diagnostic: str = "",
    now: datetime | None = None,
) -> list[FeedbackOutcome]:
    """Apply the bounce / complaint / auto-reply policies to one classification; flushes, never commits.

    The send is found by VERP (`verp_detail`, else the classifier's token), else by one of our
    Message-IDs (the classifier's quoted original, or `references` found in the report) sent to
    the report's recipient. A report tied to no send is stored for review (`raw` kept, capped)
    and changes nobody. Authentication-failure reports (RFC 6591, DMARC failure reports) name
    our domain, not a contact: they raise the sender alert of the `reporter`'s provider.
    `diagnostic` (the remote server's words) chooses the fix a block's alert names.
    """
    now = now or _now()
    c = classification
    if c.feedback_type == "auth-failure":
        return [_authentication_report(session, c, source, reporter, now)]
    targets = _find_targets(session, c, settings, verp_detail, references)
    if isinstance(targets, str):
        review_id = None
        if c.category not in _NOT_REVIEWED:
            review_id = store_review(session, classification=c, why=targets, source=source, raw_ref=raw_ref,
                                     raw=raw, now=now).id
        action = "forged" if targets == FORGED_VERP else "unmatched"
        recipients = (c.recipients[0] if c.recipients else None,) if action == "forged" else (c.recipients or (None,))
        return [FeedbackOutcome(action, recipient=r, review_id=review_id) for r in recipients]
    if not targets:
        return [FeedbackOutcome("unmatched", recipient=r) for r in (c.recipients or (None,))]
    outcomes = []
    for target in targets:
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
        outcomes.append(_apply(session, c, target, {**evidence, "diagnostic": diagnostic[:500]} if diagnostic
                               else evidence, now))
    session.flush()
    return outcomes


def _authentication_report(session: Session, c: Classification, source: str, reporter: str | None,
                           now: datetime) -> FeedbackOutcome:
    # The receiver reports that our mail failed SPF / DKIM / DMARC there: the same fix as a
    # 5.7.26 refusal, on the same per-provider alert. The recipient is left alone.
    domain = (c.recipients[0] if c.recipients else reporter or "").rpartition("@")[2]
    fix = authentication_fix(c.reason)
    raise_sender_alert(session, provider=provider_for(domain, status=c.status), topic=fix.topic, fix=fix.fix,
                       status=c.status,
                       reason=c.reason, severity="warning", domain=domain or None, source=f"{source}:auth-failure",
                       now=now)
    return FeedbackOutcome("sender_alert", recipient=c.recipients[0] if c.recipients else None)


def smtp_refusal_hook(settings: Settings) -> Any:
    """The delivery engine's failure hook: a permanent refusal in our own SMTP session is a bounce."""
    def on_refusal(session: Session, *, send_id: int, code: int, message: str) -> None:
        email = session.scalar(select(Contact.email).join(Send, Send.contact_id == Contact.id)
                               .where(Send.id == send_id))
        record_feedback(session, classification=classify_smtp_reply(email or "", code, message), settings=settings,
                        raw_ref=f"smtp:{send_id}", source="smtp", verp_detail=verp_detail(settings.secret_keys, send_id),
                        diagnostic=f"{code} {message}")

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
            _raise_alert(session, c, target, evidence, now)
        return _outcome("delay", target)
    if c.kind in (HARD, SOFT) and c.is_sender_fault:
        # COMPLIANCE row 26: 5.7.x policy / authentication rejections are the sender's fault:
        # alert the operator and leave the recipient alone.
        _event(session, "sender_fault", target, evidence, now)
        _raise_alert(session, c, target, evidence, now)
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


def _raise_alert(session: Session, c: Classification, target: _Target, evidence: dict[str, Any],
                 now: datetime) -> None:
    """The per-provider sender alert for a block of a mail we sent (insight.alerts.raise_sender_alert)."""
    domain = (target.recipient or target.contact.email).rpartition("@")[2]
    source = str(evidence.get("source"))
    fix = fix_for(c.status, c.reason, evidence.get("diagnostic", ""))
    code = c.status or c.reply_code or ""
    provider = provider_for(domain, status=c.status, diagnostic=str(evidence.get("diagnostic", "")))
    raise_sender_alert(session, provider=provider, topic=fix.topic, fix=fix.fix, status=code or None,
                       reason=c.reason, severity="critical" if code.startswith("5") else "warning", domain=domain,
                       campaign_id=target.send.campaign_id if target.send else None, source=source, now=now)
