"""What a classification says: the kinds and the Classification record every format returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The five coarse kinds: the `kind` of the CLI's JSON contract (docs/feedback.md).
HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"
AUTO_REPLY = "auto_reply"
OTHER = "other"
# Fine categories on top of them; each folds onto one coarse kind (COARSE).
BLOCK = "block"  # the receiver refused the sender (policy, reputation, authentication, content)
UNSUBSCRIBE = "unsubscribe"  # ARF Feedback-Type: opt-out
CHALLENGE = "challenge"  # challenge-response: asks the sender to prove it is a person
DELIVERED = "delivered"  # a 2.x.x DSN
DELAY = "delay"  # a 4.x.x DSN with Action: delayed, or an MTA's delay warning

COARSE = {BLOCK: SOFT, UNSUBSCRIBE: COMPLAINT, CHALLENGE: OTHER, DELIVERED: OTHER, DELAY: SOFT}
CATEGORIES = (HARD, SOFT, BLOCK, COMPLAINT, UNSUBSCRIBE, AUTO_REPLY, CHALLENGE, DELIVERED, DELAY, OTHER)


def coarse_kind(category: str) -> str:
    """The coarse kind (hard, soft, complaint, auto_reply, other) a fine category folds onto."""
    return COARSE.get(category, category)


@dataclass(frozen=True)
class Classification:
    """What one inbound message (or provider event) says about the recipients of a send.

    `kind` is the coarse kind; `category` the fine one. Built without a category (older callers,
    tests), the category follows from the kind and the flags: a soft delay is `delay`, a soft
    sender-fault refusal is `block`.
    """

    kind: str
    recipients: tuple[str, ...] = ()
    status: str | None = None
    reason: str = ""
    reply_code: str | None = None
    feedback_type: str | None = None
    is_sender_fault: bool = False
    is_delay: bool = False
    original_message_id: str | None = None
    verp_token: str | None = None
    category: str = ""

    def __post_init__(self) -> None:
        if not self.category:
            category = self.kind
            if self.kind == SOFT and self.is_delay:
                category = DELAY
            elif self.kind == SOFT and self.is_sender_fault:
                category = BLOCK
            object.__setattr__(self, "category", category)

    def to_json(self, file: str | None = None) -> dict[str, Any]:
        """The JSON line the CLI prints: file, kind, recipients, status, reason, then extras."""
        return {
            "file": file,
            "kind": self.kind,
            "recipients": list(self.recipients),
            "status": self.status,
            "reason": self.reason,
            "category": self.category,
            "reply_code": self.reply_code,
            "feedback_type": self.feedback_type,
            "is_sender_fault": self.is_sender_fault,
            "is_delay": self.is_delay,
            "original_message_id": self.original_message_id,
            "verp_token": self.verp_token,
        }


def classified(category: str, **fields: Any) -> Classification:
    """A Classification of a fine category, with its coarse kind and flags set to match."""
    fields.setdefault("is_sender_fault", category == BLOCK)
    fields.setdefault("is_delay", category == DELAY)
    return Classification(kind=coarse_kind(category), category=category, **fields)


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    """The items without empties and repeats, first occurrence first."""
    return tuple(dict.fromkeys(item for item in items if item))


def replace(item: Classification, **changes: Any) -> Classification:
    """A copy of a classification with some fields changed."""
    data = {name: getattr(item, name) for name in item.__dataclass_fields__}
    data.update(changes)
    return Classification(**data)
