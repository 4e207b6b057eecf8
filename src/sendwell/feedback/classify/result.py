"""What a classification says: the kinds and the Classification record every format returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"
AUTO_REPLY = "auto_reply"
OTHER = "other"


@dataclass(frozen=True)
class Classification:
    """What one inbound message (or provider event) says about the recipients of a send."""

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

    def to_json(self, file: str | None = None) -> dict[str, Any]:
        """The JSON line the CLI prints: file, kind, recipients, status, reason, then extras."""
        return {
            "file": file,
            "kind": self.kind,
            "recipients": list(self.recipients),
            "status": self.status,
            "reason": self.reason,
            "reply_code": self.reply_code,
            "feedback_type": self.feedback_type,
            "is_sender_fault": self.is_sender_fault,
            "is_delay": self.is_delay,
            "original_message_id": self.original_message_id,
            "verp_token": self.verp_token,
        }


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))



def replace(item: Classification, **changes: Any) -> Classification:
    data = {name: getattr(item, name) for name in item.__dataclass_fields__}
    data.update(changes)
    return Classification(**data)

