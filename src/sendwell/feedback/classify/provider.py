"""Provider event payloads: Amazon SES notifications (raw or SNS-wrapped) and SendGrid event arrays."""

from __future__ import annotations

import json
from typing import Any

from sendwell.feedback.classify.result import (
    BLOCK,
    COMPLAINT,
    DELAY,
    DELIVERED,
    HARD,
    OTHER,
    SOFT,
    Classification,
    classified,
    dedupe,
)
from sendwell.feedback.classify.status import (
    SUCCESS_REPLY_RE,
    best_status,
    first_reply_code,
)
from sendwell.feedback.classify.verdict import Evidence, judge

LENIENT_JSON = json.JSONDecoder(strict=False)


def embedded_json(body: str) -> Any:
    """A JSON document that is the whole body of a mail (SES via e-mail), or None."""
    start = body.find("{")
    if start < 0 or body[:start].strip():
        return None
    try:
        # strict=False: mail transport may fold a long JSON string across lines.
        value, _ = LENIENT_JSON.raw_decode(body[start:])
    except ValueError:
        return None
    return value


def as_dict(value: Any) -> dict[str, Any]:
    # Webhook bodies come from outside: a wrong shape should yield no event, not a crash.
    """The value if it is a dict, else an empty one."""
    return value if isinstance(value, dict) else {}


def ses_events(payload: dict[str, Any]) -> list[Classification]:
    """The classifications in one Amazon SES notification, one per recipient."""
    kind_field = payload.get("notificationType") or payload.get("eventType") or ""
    mail = as_dict(payload.get("mail"))
    # commonHeaders carries the Message-ID we set (it names our send); mail.messageId is SES's own.
    message_id = as_dict(mail.get("commonHeaders")).get("messageId") or mail.get("messageId")
    out: list[Classification] = []
    if kind_field == "Bounce":
        bounce = as_dict(payload.get("bounce"))
        btype = str(bounce.get("bounceType", ""))
        subtype = str(bounce.get("bounceSubType", ""))
        for rcpt in map(as_dict, bounce.get("bouncedRecipients") or []):
            if not rcpt.get("emailAddress"):
                continue
            status = str(rcpt.get("status") or "")
            diag = str(rcpt.get("diagnosticCode") or "")
            reply = first_reply_code(diag.split(";", 1)[-1])
            if btype == "Permanent":
                # SES has already decided the failure is permanent (General, NoEmail, Suppressed…).
                ev = Evidence(best_status(status, diag), reply, f"{diag} {subtype}".lower())
                category, reason = judge(ev)
                if category not in (HARD, BLOCK):
                    category, reason = HARD, f"permanent bounce ({subtype or 'General'})"
            else:
                category = SOFT
                reason = f"transient bounce ({subtype or 'General'})"
                if subtype == "MailboxFull":
                    reason = "mailbox full"
            out.append(
                classified(
                    category,
                    recipients=dedupe([str(rcpt.get("emailAddress", "")).lower()]),
                    status=best_status(status, diag),
                    reason=reason,
                    reply_code=reply,
                    original_message_id=message_id,
                )
            )
    elif kind_field == "Complaint":
        complaint = as_dict(payload.get("complaint"))
        ftype = complaint.get("complaintFeedbackType")
        kind = OTHER if ftype in ("not-spam", "auth-failure") else COMPLAINT
        for rcpt in map(as_dict, complaint.get("complainedRecipients") or []):
            out.append(
                Classification(
                    kind=kind,
                    recipients=dedupe([str(rcpt.get("emailAddress", "")).lower()]),
                    reason="abuse complaint" if kind == COMPLAINT else f"feedback ({ftype})",
                    feedback_type=ftype or ("abuse" if kind == COMPLAINT else None),
                    original_message_id=message_id,
                )
            )
    elif kind_field in ("Delivery", "DeliveryDelay"):
        details = as_dict(payload.get("delivery") or payload.get("deliveryDelay"))
        recipients = details.get("recipients") or [
            as_dict(r).get("emailAddress", "") for r in details.get("delayedRecipients") or []
        ]
        smtp = str(details.get("smtpResponse") or "")
        is_delay = kind_field == "DeliveryDelay"
        for address in recipients:
            out.append(
                classified(
                    DELAY if is_delay else DELIVERED,
                    recipients=dedupe([str(address).lower()]),
                    status=best_status(smtp),
                    reason="delivery delayed" if is_delay else "delivered",
                    reply_code=first_reply_code(smtp) or SUCCESS_REPLY_RE.match(smtp) and smtp[:3] or None,
                    original_message_id=message_id,
                )
            )
    return out


def sendgrid_event(event: dict[str, Any]) -> Classification:
    """The classification of one SendGrid event."""
    name = str(event.get("event", "")).lower()
    rcpt = dedupe([str(event.get("email", "")).lower()])
    status = best_status(str(event.get("status", "")))
    reason_text = str(event.get("reason") or event.get("response") or "")
    reply = first_reply_code(reason_text)
    # "smtp-id" is the Message-ID we wrote; "sg_message_id" is SendGrid's own and names none of our sends.
    message_id = event.get("smtp-id") or event.get("sg_message_id")
    base = {"recipients": rcpt, "status": status, "reply_code": reply, "original_message_id": message_id}
    if name == "bounce":
        ev = Evidence(status, reply, reason_text.lower())
        category, reason = judge(ev)
        # SendGrid "blocked": the receiver refused this message, not necessarily the address.
        if category == HARD and str(event.get("type", "bounce")).lower() == "blocked":
            category, reason = SOFT, "blocked"
        return classified(category, reason=reason, **base)
    if name == "deferred":
        return classified(DELAY, reason="delivery delayed", **base)
    if name == "spamreport":
        return Classification(kind=COMPLAINT, reason="abuse complaint", feedback_type="abuse", **base)
    if name == "dropped":
        lowered = reason_text.lower()
        if "spam" in lowered:
            return Classification(
                kind=COMPLAINT, reason="dropped: previous spam report", feedback_type="abuse", **base
            )
        if "bounce" in lowered or "invalid" in lowered:
            return Classification(kind=HARD, reason=f"dropped: {reason_text}", **base)
        return Classification(kind=OTHER, reason=f"dropped: {reason_text or 'unspecified'}", **base)
    return Classification(kind=OTHER, reason=f"provider event ({name or 'unknown'})", **base)


def classify_provider_json(payload: dict[str, Any] | list[Any]) -> list[Classification]:
    """Classify an Amazon SES (raw or SNS-wrapped) notification or a SendGrid event array."""
    if isinstance(payload, list):
        return [sendgrid_event(e) for e in payload if isinstance(e, dict) and "event" in e]
    if not isinstance(payload, dict):
        return []
    if "Message" in payload and isinstance(payload["Message"], str):  # SNS envelope
        try:
            inner = LENIENT_JSON.decode(payload["Message"])
        except ValueError:
            return []
        return classify_provider_json(inner)
    if "event" in payload and "email" in payload:
        return [sendgrid_event(payload)]
    return ses_events(payload)
