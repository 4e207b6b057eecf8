"""Bounces without an RFC 3464 report (Exim, qmail, Postfix text, gateways): prose diagnosis and recipients."""

from __future__ import annotations

import re
from email.message import Message
from typing import Any

from sendwell.feedback.classify.headers import (
    ADDR_RE,
    DAEMON_LOCAL,
    header_addrs,
    is_daemon,
    message_id_of,
    subject_of,
)
from sendwell.feedback.classify.mime import Parts
from sendwell.feedback.classify.result import DELAY, Classification, classified, dedupe
from sendwell.feedback.classify.status import best_status, first_reply_code
from sendwell.feedback.classify.verdict import Evidence, judge
from sendwell.feedback.classify.wording import DELAY_NOTICE, SENDER_FAULT

HEADERISH_RE = re.compile(
    r"^[ \t>]*(?:to|from|cc|bcc|reply-to|sender|return-path|message-id|subject|date|received"
    r"|references|in-reply-to|x-[\w-]+|envelope-from|sent)[ \t]*:",
    re.I,
)
TO_LINE_RE = re.compile(r"^[ \t>]*(?:to|cc)[ \t]*:(.*)$", re.I | re.M)
MSGID_LINE_RE = re.compile(r"^[ \t]*message-id[ \t]*:[ \t]*(<[^<>\s]+>)", re.I | re.M)
# Where a plain-text bounce starts quoting the original message: text after this is not diagnosis.
CUT_MARKERS = (
    "original message follows", "original mail as follows", "copy of the message",
    "header of the original message", "message headers follow", "original message:",
    "unsent message below", "returned message follows",
)
CUT_RE = re.compile("|".join(map(re.escape, CUT_MARKERS)), re.I)
BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|delivery (?:status|fail|notification|report|problem)|returned mail|failure notice"
    r"|mail delivery failed|delivery has failed|could not be delivered|non-?delivery|loop alert"
    r"|error sending your mail|returned to sender"
    r"|unzustellbar|nicht zustellbar|[ée]chec de (?:la )?remise|non remis|non distribu|no se puede entregar"
    r"|no entregado|entrega fallida|系统退信|退信|无法投递|投递失败|未送达|未能送达",
    re.I,
)


def split_text(text: str) -> tuple[str, str]:
    """(diagnosis, quoted original) of a plain-text bounce."""
    lowered = text.lower()
    if len(lowered) == len(text):  # positions agree (a few letters, e.g. "İ", lower to two)
        found = [i for i in (lowered.find(marker) for marker in CUT_MARKERS) if i >= 0]
        first = min(found) if found else -1
    else:
        match = CUT_RE.search(text)
        first = match.start() if match else -1
    if first < 0:
        return text, ""
    # The whole line holding the first marker is the cut.
    start = text.rfind("\n", 0, first) + 1
    end = text.find("\n", first)
    return text[:start], text[end:] if end >= 0 else ""


def scan_addrs(text: str, exclude: set[str]) -> list[str]:
    """Addresses in a plain-text diagnosis, skipping header-like lines, our own and daemon addresses."""
    found: list[str] = []
    for line in text.splitlines():
        if "@" not in line or HEADERISH_RE.match(line):
            continue
        for match in ADDR_RE.finditer(line):
            address = match.group(0).lower().strip(".-")
            local = address.split("@", 1)[0]
            if address in exclude or local in DAEMON_LOCAL:
                continue
            found.append(address)
    return found


def to_line_addrs(text: str, exclude: set[str]) -> list[str]:
    """Addresses on To:/Cc: lines of quoted text, except excluded ones."""
    found: list[str] = []
    for match in TO_LINE_RE.finditer(text):
        for address in ADDR_RE.findall(match.group(1)):
            address = address.lower()
            if address not in exclude:
                found.append(address)
    return found


def from_plain_bounce(msg: Message, parts: Parts, common: dict[str, Any]) -> Classification:
    """A bounce without a DSN: the diagnosis before the quoted original, judged."""
    text = "\n".join(parts.texts)
    diagnosis, quoted = split_text(text)
    exclude = header_addrs(msg, "From", "To", "Return-Path", "Reply-To", "Sender")
    failed_hdr = [a.strip().lower() for a in str(msg.get("X-Failed-Recipients", "")).split(",") if "@" in a]
    rcpts = failed_hdr or scan_addrs(diagnosis, exclude)
    if not rcpts:
        rcpts = to_line_addrs(diagnosis, exclude) or to_line_addrs(quoted, exclude)
    if not rcpts and parts.original is not None:
        rcpts = sorted(header_addrs(parts.original, "To") - exclude)
    status = best_status(diagnosis)
    reply = first_reply_code(diagnosis)
    lowered = diagnosis.lower()
    original_id = message_id_of(parts.original)
    if original_id is None:
        match = MSGID_LINE_RE.search(quoted or diagnosis)
        original_id = match.group(1) if match else None
    subject = subject_of(msg)
    if DELAY_NOTICE.search(lowered) and re.search(r"warning|delayed", subject, re.I):
        # Exim/Postfix delay warnings: the MTA is still retrying (RFC 3464 "delayed" in prose).
        return classified(
            DELAY,
            recipients=dedupe(rcpts),
            status=status,
            reason="delivery delayed",
            reply_code=reply,
            is_sender_fault=bool(SENDER_FAULT.search(lowered)),
            original_message_id=original_id,
            **common,
        )
    category, reason = judge(Evidence(status, reply, lowered))
    return classified(
        category,
        recipients=dedupe(rcpts),
        status=status,
        reason=reason,
        reply_code=reply,
        original_message_id=original_id,
        **common,
    )


def looks_like_bounce(msg: Message, parts: Parts) -> bool:
    """Whether a message without a DSN is a bounce (X-Failed-Recipients, subject, daemon sender)."""
    if msg.get("X-Failed-Recipients"):
        return True
    subject = subject_of(msg)
    if BOUNCE_SUBJECT_RE.search(subject):
        return True
    return is_daemon(msg)
