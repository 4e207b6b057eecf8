"""RFC 3463 enhanced status codes and RFC 5321 reply codes found in diagnostic text."""

from __future__ import annotations

import re

# RFC 3463 enhanced status: class.subject.detail
STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]\d)")
# RFC 5321 reply code: three digits, not part of a longer number, IP address or date
REPLY_RE = re.compile(r"(?<![\d.:/=#A-Za-z])([45][0-5]\d)(?=[ \-;,'\"\]]|:[ \t]|$)", re.M)
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
    if not text:
        return None
    match = REPLY_RE.search(text)
    return match.group(1) if match else None


def last_reply_code(text: str) -> str | None:
    # Relays quote the remote reply after their own ("554 ... <421 4.4.2 ...>"): keep the inner one.
    codes = REPLY_RE.findall(text)
    return codes[-1] if codes else None

