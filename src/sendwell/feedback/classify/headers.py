"""Header and address helpers shared by every input format: recipients, daemons, subjects, VERP."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr

ADDR_RE = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
VERP_RE = re.compile(r"(?:^|[\s<:,\"])bounce\+([^@\s<>\"]+)@", re.I)
DAEMON_LOCAL = frozenset(
    {"mailer-daemon", "postmaster", "post_master", "mail.delivery.system", "mailerdaemon", "mdaemon"}
)
DAEMON_NAME_RE = re.compile(r"mail delivery|mailer-daemon|postmaster|ndr administrator", re.I)


def addr(value: object) -> str | None:
    """One lower-cased address out of a header or DSN field ("rfc822; <a@b>" → "a@b")."""
    if not value:
        return None
    # compat32 hands back email.header.Header objects for fields with raw 8-bit bytes.
    value = " ".join(str(value).split())
    if ";" in value:  # RFC 3464 §2.3.2: address-type ";" generic-address
        value = value.split(";", 1)[1]
    match = ADDR_RE.search(value)
    return match.group(0).lower().strip(".") if match else None


def header_addrs(msg: Message, *names: str) -> set[str]:
    """The lower-cased addresses in some address headers."""
    found: set[str] = set()
    for name in names:
        for value in msg.get_all(name) or []:
            text = str(value)
            if '"' in text or "(" in text:
                # A quoted display name or a comment may itself hold an "@": the full parser.
                found.update(a.lower() for _, a in getaddresses([text]) if "@" in a)
            else:
                found.update(a.lower() for a in ADDR_RE.findall(text))
    return found


def subject_of(msg: Message) -> str:
    # RFC 2047 encoded words: vacation notices in other languages almost always use them.
    """The Subject with RFC 2047 encoded words decoded."""
    value = str(msg.get("Subject", "") or "")
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # hostile encoded words (bad charset names, broken base64): keep the raw text
        return value


def is_daemon(msg: Message) -> bool:
    """Whether the message comes from a mailer-daemon or postmaster."""
    name, address = parseaddr(str(msg.get("From", "")))
    local = (address or name).split("@", 1)[0].lower()
    return local in DAEMON_LOCAL or bool(DAEMON_NAME_RE.search(name or ""))


def verp_token_of(msg: Message) -> str | None:
    # Envelope headers first: they carry the address the MTA used, before any display mangling.
    """The detail of a bounce+…@ address in the envelope headers, or None."""
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"):
        for value in msg.get_all(name) or []:
            match = VERP_RE.search(str(value))
            if match:
                return match.group(1)
    return None


def message_id_of(msg: Message | None) -> str | None:
    """The Message-ID of a (quoted) message, whitespace collapsed, or None."""
    if msg is None:
        return None
    value = msg.get("Message-ID")
    return " ".join(str(value).split()) if value else None
