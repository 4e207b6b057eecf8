"""MIME structure of an inbound report: text parts, delivery-status blocks, feedback report, original."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

HEADER_PARSER = HeaderParser(policy=email.policy.compat32)
TAG_RE = re.compile(r"<[^<>]{0,2000}>")


def normalise(raw: bytes) -> bytes:
    # The corpus mixes LF, CRLF and CR-only files; the email parser copes best with one style.
    """The raw bytes with one line-ending style (LF)."""
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return raw


def text_of(part: Message) -> str:
    """The decoded text of one MIME part."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    return decode_text(payload, part.get_content_charset())


def decode_text(payload: bytes, charset: str | None) -> str:
    """Bytes of a text part in its declared charset; UTF-8 when the name is unknown or garbage.

    A mangled report can declare anything as its charset, even a name with a NUL in it,
    which the codec lookup rejects with ValueError rather than LookupError.
    """
    try:
        return payload.decode(charset or "utf-8", errors="replace")
    except (LookupError, ValueError):
        return payload.decode("utf-8", errors="replace")


@dataclass
class Parts:
    """What the MIME walk found: text parts, DSN blocks, the feedback report, the quoted original."""

    texts: list[str]
    dsn_blocks: list[Message]
    feedback: Message | None
    original: Message | None


def collect(msg: Message) -> Parts:
    """Walk a message once and sort its parts by role."""
    parts = Parts([], [], None, None)
    html: list[str] = []

    def visit(part: Message) -> None:
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                parts.dsn_blocks.extend(p for p in payload if isinstance(p, Message))
            elif isinstance(payload, str):  # malformed: parse the fields ourselves
                for chunk in re.split(r"\n[ \t]*\n", payload):
                    parts.dsn_blocks.append(email.message_from_string(chunk.strip() + "\n"))
        elif ctype == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                parts.feedback = payload[0]
            elif isinstance(payload, str):
                parts.feedback = email.message_from_string(payload.lstrip())
        elif ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if parts.original is None and isinstance(payload, list) and payload:
                parts.original = payload[0]
        elif ctype in ("text/rfc822-headers", "text/global-headers"):
            if parts.original is None:
                parts.original = HEADER_PARSER.parsestr(text_of(part).lstrip())
        elif part.is_multipart():
            for sub in part.get_payload():
                visit(sub)
        elif part.get_content_maintype() == "multipart":
            # Broken MIME (boundary parameter lost): keep the raw text so wording still counts.
            parts.texts.append(text_of(part))
        elif ctype == "text/plain" or part.get_content_maintype() == "text" and ctype != "text/html":
            if not part.get_filename() or not parts.texts:
                parts.texts.append(text_of(part))
        elif ctype == "text/html":
            html.append(TAG_RE.sub(" ", text_of(part)))

    visit(msg)
    if not parts.texts and html:
        parts.texts.extend(html)
    return parts
