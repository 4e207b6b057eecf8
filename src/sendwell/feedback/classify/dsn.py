"""RFC 3464 delivery status notifications (multipart/report; report-type=delivery-status)."""

from __future__ import annotations

from email.message import Message
from typing import Any

from sendwell.feedback.classify.headers import addr, message_id_of
from sendwell.feedback.classify.mime import Parts
from sendwell.feedback.classify.plain import split_text
from sendwell.feedback.classify.result import (
    DELAY,
    DELIVERED,
    Classification,
    classified,
    dedupe,
)
from sendwell.feedback.classify.status import (
    best_status,
    first_reply_code,
    last_reply_code,
)
from sendwell.feedback.classify.verdict import Evidence, judge


def from_delivery_status(msg: Message, parts: Parts, common: dict[str, Any]) -> Classification | None:
    """A DSN's classification from its per-recipient blocks; None when no block names a recipient."""
    records = []
    for block in parts.dsn_blocks:
        rcpt = addr(block.get("Final-Recipient")) or addr(block.get("Original-Recipient"))
        if rcpt is None:
            continue
        action = " ".join(str(block.get("Action", "")).split()).lower()
        status_field = str(block.get("Status", "") or "")
        diag = " ".join(str(block.get("Diagnostic-Code", "") or "").split())
        records.append((rcpt, action, status_field, diag))
    if not records:
        return None
    failed = [r for r in records if r[1].startswith("failed")] or [
        r for r in records if not r[1].startswith(("delivered", "relayed", "expanded", "delayed"))
    ]
    notification = split_text("\n".join(parts.texts))[0]
    if failed:
        rcpt, action, status_field, diag = failed[0]
        # The remote server's own code quoted in Diagnostic-Code is more precise than the
        # Status the reporting MTA synthesised (e.g. SES reports 5.0.0 for a quoted 5.2.2).
        status = best_status(status_field, diag)
        reply = last_reply_code(diag.split(";", 1)[-1]) or first_reply_code(notification)
        text = f"{diag}\n{notification}".lower() if diag else notification.lower()
        ev = Evidence(status, reply, text)
        category, reason = judge(ev)
        return classified(
            category,
            recipients=dedupe(r[0] for r in failed),
            status=status,
            reason=reason,
            reply_code=reply,
            original_message_id=message_id_of(parts.original),
            **common,
        )
    delayed = [r for r in records if r[1].startswith("delayed")]
    if delayed:
        # RFC 3464 §2.3.3 "delayed": still queued; COMPLIANCE row 27 says never suppress on it.
        rcpt, _, status_field, diag = delayed[0]
        return classified(
            DELAY,
            recipients=dedupe(r[0] for r in delayed),
            status=best_status(status_field, diag),
            reason="delivery delayed",
            reply_code=first_reply_code(diag.split(";", 1)[-1]),
            original_message_id=message_id_of(parts.original),
            **common,
        )
    rcpt, action, status_field, diag = records[0]
    return classified(
        DELIVERED,
        recipients=dedupe(r[0] for r in records),
        status=best_status(status_field, diag),
        reason=f"delivery succeeded ({action or 'success'})",
        reply_code=first_reply_code(diag.split(";", 1)[-1]),
        original_message_id=message_id_of(parts.original),
        **common,
    )


def nested_report(msg: Message | None) -> bool:
    """Whether a quoted original is itself a multipart/report (a gateway re-wrapped the DSN)."""
    return msg is not None and msg.get_content_type() == "multipart/report"
