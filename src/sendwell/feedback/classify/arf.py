"""RFC 5965 feedback reports (ARF) and RFC 6591 authentication-failure reports."""

from __future__ import annotations

from email.message import Message
from typing import Any

from sendwell.feedback.classify.headers import addr, header_addrs, message_id_of
from sendwell.feedback.classify.mime import Parts
from sendwell.feedback.classify.result import (
    COMPLAINT,
    OTHER,
    UNSUBSCRIBE,
    Classification,
    classified,
    dedupe,
)


def from_feedback_report(msg: Message, parts: Parts, common: dict[str, Any]) -> Classification:
    """An ARF report's classification: complaint, unsubscribe or other, with the reported recipients."""
    report = parts.feedback
    assert report is not None
    ftype = " ".join(str(report.get("Feedback-Type", "")).split()).lower() or None
    rcpts = [a for a in (addr(v) for v in report.get_all("Original-Rcpt-To") or []) if a]
    if not rcpts:
        rcpts = [a for a in (addr(v) for v in report.get_all("Removal-Recipient") or []) if a]
    if not rcpts and parts.original is not None:
        rcpts = sorted(header_addrs(parts.original, "To"))
    # RFC 5965 §7.3: abuse, fraud and virus are people's complaints; RFC 6591 auth-failure is a
    # DKIM/SPF failure report and not-spam is the opposite of a complaint.
    if ftype in ("abuse", "fraud", "virus"):
        category, reason = COMPLAINT, f"{ftype} complaint"
    elif ftype == "opt-out":
        # RFC 5965 §7.3 opt-out: the person asks to receive no more mail; an unsubscribe, not abuse.
        category, reason = UNSUBSCRIBE, "opt-out via feedback loop"
    elif ftype == "auth-failure":
        category, reason = OTHER, "authentication failure report"
    else:
        category, reason = OTHER, f"feedback report ({ftype or 'unknown type'})"
    return classified(
        category,
        recipients=dedupe(rcpts),
        reason=reason,
        feedback_type=ftype,
        original_message_id=message_id_of(parts.original),
        **common,
    )
