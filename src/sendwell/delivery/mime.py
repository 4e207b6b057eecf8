"""Build one marketing message as CRLF bytes with every header the contracts require."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email import charset as _charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from datetime import datetime, timezone

# compat32 MIME classes are ~3× faster than EmailMessage(policy=SMTP) (BENCHMARKS.md);
# quoted-printable keeps mostly-ASCII bodies readable and under 78 columns.
_UTF8_QP = _charset.Charset("utf-8")
_UTF8_QP.header_encoding = _charset.QP
_UTF8_QP.body_encoding = _charset.QP
_SMTP_POLICY = compat32.clone(linesep="\r\n")
_UNSAFE = re.compile(r"[\r\n\x00]")


class HeaderInjection(ValueError):
    """A header value carried CR, LF or NUL."""


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # the VERP Return-Path
    rcpt_to: str
    data: bytes
    message_id: str


def _clean(value: str, what: str) -> str:
    if _UNSAFE.search(value):
        raise HeaderInjection(f"{what} contains a line break")
    return value


def _idna_address(address: str) -> str:
    local, _, domain = address.rpartition("@")
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def _format_address(name: str, address: str) -> str:
    address = _idna_address(_clean(address, "address"))
    # Display names come from imported data: fold line breaks rather than refuse the mail.
    name = " ".join(_UNSAFE.sub(" ", name).split())
    return formataddr((name, address), charset="utf-8") if name else address


def make_message_id(send_id: int, domain: str) -> str:
    return f"<{send_id}.{secrets.token_hex(6)}@{domain}>"


def build_message(
    *,
    from_header: str,
    to_name: str,
    to_address: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    list_unsubscribe: list[str],
    list_id: str,
    feedback_id: str,
    one_click: bool = True,
    date: datetime | None = None,
) -> bytes:
    """multipart/alternative text+HTML, UTF-8, CRLF; header values are checked for injection."""
    msg = MIMEMultipart("alternative")
    from_name, from_addr = parseaddr(from_header)
    msg["From"] = _format_address(from_name, from_addr)
    msg["To"] = _format_address(to_name, to_address)
    subject = _clean(subject, "subject")
    try:
        subject.encode("ascii")
        msg["Subject"] = subject
    except UnicodeEncodeError:
        msg["Subject"] = Header(subject, _UTF8_QP, header_name="Subject")
    msg["Date"] = format_datetime(date or datetime.now(timezone.utc))
    msg["Message-ID"] = message_id
    # RFC 2369: URIs in angle brackets, comma-separated, https first.
    msg["List-Unsubscribe"] = ", ".join(f"<{_clean(u, 'List-Unsubscribe')}>" for u in list_unsubscribe)
    if one_click:
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058 §3.1
    msg["List-Id"] = _clean(list_id, "List-Id")
    msg["Feedback-ID"] = _clean(feedback_id, "Feedback-ID")
    msg.attach(MIMEText(text, "plain", _UTF8_QP))
    msg.attach(MIMEText(html, "html", _UTF8_QP))
    return msg.as_bytes(policy=_SMTP_POLICY)
