"""The decision for a failed delivery: kind, reason and sender fault from status, reply code and wording."""

from __future__ import annotations

from dataclasses import dataclass

from sendwell.feedback.classify.result import HARD, SOFT
from sendwell.feedback.classify.wording import (
    DISABLED,
    EXPIRED,
    HOST_UNKNOWN,
    LOOP,
    MAILBOX_FULL,
    SENDER_FAULT,
    SPAM,
    STAGE_DATA,
    STAGE_RCPT,
    TOO_LARGE,
    USER_UNKNOWN_STRONG,
    USER_UNKNOWN_WEAK,
)


@dataclass
class Evidence:
    status: str | None
    reply_code: str | None
    text: str  # lower-cased diagnosis
    structured: bool = False  # came from an RFC 3464 per-recipient block with Action: failed
    default_hard: bool = True


def judge(ev: Evidence) -> tuple[str, str, bool]:
    """(kind, reason, is_sender_fault) for a failed delivery, from status, reply code and wording."""
    status, text = ev.status, ev.text
    klass = status[0] if status else (ev.reply_code[0] if ev.reply_code else None)
    sub = status[2:] if status else ""

    # Rate limits, blocklists and authentication failures look like any 5xx but say nothing
    # about the mailbox: the sender must fix them (COMPLIANCE row 26: alert, do not suppress).
    if SENDER_FAULT.search(text) or sub in ("1.7", "1.8") or sub.startswith("7."):
        reason = "policy rejection (sender's fault)"
        if SPAM.search(text) and not SENDER_FAULT.search(text):
            reason = "rejected as spam (sender's fault)"
        return SOFT, reason, True
    if klass == "4":  # RFC 3463 §3.1: 4.x.x is a persistent transient failure
        if MAILBOX_FULL.search(text) or sub == "2.2":
            return SOFT, "mailbox full", False
        if sub.startswith("4.") or EXPIRED.search(text):
            return SOFT, "temporary network failure / expired", False
        return SOFT, "temporary failure", False
    # RFC 3463: X.2.2 mailbox full is transient by nature even when reported as 5.2.2.
    if sub == "2.2" or MAILBOX_FULL.search(text):
        return SOFT, "mailbox full", False
    if sub == "3.4" or TOO_LARGE.search(text):
        return SOFT, "message too large", False
    # RFC 3463 §3.2/§3.3/§3.5: addressing and mailbox statuses name the recipient directly.
    if klass == "5" and sub in ("1.2", "4.4"):
        return HARD, "host unknown", False
    if klass == "5" and sub in ("1.6", "2.1"):
        return HARD, "mailbox disabled or moved", False
    if klass == "5" and sub in ("1.1", "1.10", "1.0", "1.3"):
        return HARD, "user unknown", False
    if SPAM.search(text):
        return SOFT, "rejected as spam (sender's fault)", True
    if LOOP.search(text):
        return SOFT, "mail loop", False
    if HOST_UNKNOWN.search(text):
        return HARD, "host unknown", False
    if DISABLED.search(text):
        return HARD, "mailbox disabled or moved", False

    strong = USER_UNKNOWN_STRONG.search(text)
    weak = USER_UNKNOWN_WEAK.search(text)
    if strong or weak:
        # A recipient that passed RCPT TO cannot be unknown at DATA: that is a content filter.
        if STAGE_DATA.search(text) and not STAGE_RCPT.search(text):
            return SOFT, "rejected after DATA (filtered)", False
        if strong or STAGE_RCPT.search(text):
            return HARD, "user unknown", False
        specific = status is not None and sub not in ("0.0",)
        if ev.structured and not specific:
            return HARD, "user unknown", False
        return SOFT, "rejected (unconfirmed user unknown, likely filtered)", False
    if EXPIRED.search(text):
        return SOFT, "delivery expired", False
    if klass == "5" and ev.default_hard:
        # COMPLIANCE row 26: Action failed + 5.x.x with nothing pointing elsewhere is permanent.
        return HARD, "permanent failure", False
    return SOFT, "undetermined failure", False

