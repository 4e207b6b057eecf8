"""Classify inbound feedback (DSN, ARF, plain bounces, auto-replies, provider events, SMTP replies) without a database."""

from sendwell.feedback.classify.message import classify_file, classify_message
from sendwell.feedback.classify.mime import decode_text
from sendwell.feedback.classify.provider import classify_provider_json
from sendwell.feedback.classify.result import (
    AUTO_REPLY,
    BLOCK,
    CATEGORIES,
    CHALLENGE,
    COMPLAINT,
    DELAY,
    DELIVERED,
    HARD,
    OTHER,
    SOFT,
    UNSUBSCRIBE,
    Classification,
    coarse_kind,
)
from sendwell.feedback.classify.smtp_reply import classify_smtp_reply

__all__ = [
    "AUTO_REPLY",
    "BLOCK",
    "CATEGORIES",
    "CHALLENGE",
    "COMPLAINT",
    "DELAY",
    "DELIVERED",
    "HARD",
    "OTHER",
    "SOFT",
    "UNSUBSCRIBE",
    "Classification",
    "classify_file",
    "classify_message",
    "classify_provider_json",
    "classify_smtp_reply",
    "coarse_kind",
    "decode_text",
]
