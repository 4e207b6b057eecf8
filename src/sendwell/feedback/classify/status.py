"""RFC 3463 enhanced status codes and RFC 5321 reply codes found in diagnostic text."""

from __future__ import annotations

import re

# RFC 3463 enhanced status: class.subject.detail. Subjects are one digit (0-7); details run to
# three digits in providers' extensions (Microsoft 5.7.515, 5.1.351).
STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d)\.(\d{1,3})(?![\d.]\d)")
# RFC 5321 reply code: three digits, not part of a longer number, IP address or date
REPLY_RE = re.compile(r"(?<![\d.:/=#A-Za-z])([45][0-5]\d)(?=[ \-;,'\"\]]|:[ \t]|$)", re.MULTILINE)
SUCCESS_REPLY_RE = re.compile(r"2\d\d\b")


def best_status(*texts: str | None) -> str | None:
    """The most specific enhanced status in the texts: a non-zero detail beats x.y.0; later beats earlier."""
    best: str | None = None
    best_rank = -1
    for text in texts:
        if not text:
            continue
        for match in STATUS_RE.finditer(text):
            code = ".".join(match.groups())
            rank = (match.group(2) != "0") + (match.group(3) != "0")
            if rank >= best_rank:
                best, best_rank = code, rank
    return best


def first_reply_code(text: str | None) -> str | None:
    """The first SMTP reply code in a text, or None."""
    if not text:
        return None
    match = REPLY_RE.search(text)
    return match.group(1) if match else None


def last_reply_code(text: str) -> str | None:
    # Relays quote the remote reply after their own ("554 ... <421 4.4.2 ...>"): keep the inner one.
    """The last SMTP reply code in a text (the innermost quoted reply), or None."""
    codes = REPLY_RE.findall(text)
    return codes[-1] if codes else None


# Provider extensions whose meaning is fixed whatever the wording around them.
# Microsoft: 5.7.515 sender domain fails authentication, 5.7.705-5.7.708 tenant / IP
# reputation blocks; 5.1.10 recipient not found, 5.4.310 domain does not exist.
# Gmail: 5.7.23 SPF, 5.7.25 no PTR, 5.7.26 / 5.7.27 unauthenticated, 5.7.28 spam rate.
BLOCK_CODES = frozenset(
    {"5.7.515", "5.7.705", "5.7.706", "5.7.707", "5.7.708", "5.7.23", "5.7.25", "5.7.26", "5.7.27", "5.7.28"}
)
HARD_CODES = frozenset({"5.1.10", "5.4.310"})
# Microsoft 5.1.351 "Remote server returned unknown recipient or mailbox unavailable -> <reply>":
# a wrapper around the next server's 550, whatever that 550 meant; the quoted reply decides.
RELAYED_CODES = frozenset({"5.1.351"})
# RFC 3463 §3.2: X.1.1 bad mailbox, X.1.2 bad system, X.1.3 bad mailbox syntax, X.1.6 moved.
ADDRESS_DEAD = frozenset({"1", "2", "3", "6", "10"})
# RFC 3463 §3.2: X.1.7 bad sender mailbox syntax, X.1.8 bad sender system address.
SENDER_ADDRESS = frozenset({"7", "8"})


def parts_of(status: str | None) -> tuple[str, str, str]:
    """(class, subject, detail) of an enhanced status; empty strings when there is none."""
    if not status:
        return "", "", ""
    klass, subject, detail = status.split(".", 2)
    return klass, subject, detail
