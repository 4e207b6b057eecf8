"""Classify one raw inbound message or file: picks the format (ARF, DSN, provider JSON, auto-reply, plain bounce)."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

from sendwell.feedback.classify.arf import from_feedback_report
from sendwell.feedback.classify.autoreply import CHALLENGE_RE, is_auto_reply
from sendwell.feedback.classify.dsn import from_delivery_status, nested_report
from sendwell.feedback.classify.headers import header_addrs, is_daemon, verp_token_of
from sendwell.feedback.classify.mime import collect, normalise
from sendwell.feedback.classify.plain import from_plain_bounce, looks_like_bounce
from sendwell.feedback.classify.provider import classify_provider_json, embedded_json
from sendwell.feedback.classify.result import (
    AUTO_REPLY,
    CHALLENGE,
    OTHER,
    Classification,
    classified,
    dedupe,
    replace,
)


def classify_message(raw: bytes) -> Classification:
    """Classify one raw inbound message (LF, CRLF or CR line endings)."""
    msg = email.message_from_bytes(normalise(raw), policy=email.policy.compat32)
    common = {"verp_token": verp_token_of(msg)}
    parts = collect(msg)

    if parts.feedback is not None and parts.feedback.get("Feedback-Type") is not None:
        return from_feedback_report(msg, parts, common)
    if parts.dsn_blocks:
        result = from_delivery_status(msg, parts, common)
        if result is not None:
            return result
    elif nested_report(parts.original) and is_daemon(msg):
        # A gateway re-wrapped the real DSN as an attachment (message/rfc822 inside a notice).
        inner = collect(parts.original)
        if inner.dsn_blocks:
            result = from_delivery_status(parts.original, inner, common)
            if result is not None:
                return result

    body = "\n".join(parts.texts)
    # SES delivers its notifications by e-mail too (via SNS): a JSON document as the body.
    if body.lstrip().startswith("{"):
        payload = embedded_json(body)
        if isinstance(payload, dict):
            events = classify_provider_json(payload)
            if events:
                first = events[0]
                rcpts = dedupe(r for e in events for r in e.recipients)
                return replace(first, recipients=rcpts, verp_token=first.verp_token or common["verp_token"])

    if not is_daemon(msg) and is_auto_reply(msg, body):
        sender = header_addrs(msg, "From")
        return Classification(
            kind=AUTO_REPLY, recipients=dedupe(sorted(sender)), reason="vacation auto-reply", **common
        )
    if looks_like_bounce(msg, parts):
        return from_plain_bounce(msg, parts, common)
    if CHALLENGE_RE.search(body):
        sender = header_addrs(msg, "From")
        return classified(CHALLENGE, recipients=dedupe(sorted(sender)), reason="challenge-response", **common)
    return Classification(kind=OTHER, reason="not a bounce", **common)


def classify_file(path: str | Path) -> list[Classification]:
    """Classify a file by content: a JSON object/array is a provider payload, anything else a message."""
    raw = Path(path).read_bytes()
    head = raw.lstrip()[:1]
    if head in (b"{", b"["):
        try:
            payload = json.loads(raw.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, (dict, list)):
            return classify_provider_json(payload)
    return [classify_message(raw)]
