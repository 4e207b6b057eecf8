"""The decision for a failed delivery: status first (RFC 3463), then the reply code and the wording."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sendwell.feedback.classify.headers import ADDR_RE
from sendwell.feedback.classify.result import BLOCK, HARD, SOFT
from sendwell.feedback.classify.status import (
    ADDRESS_DEAD,
    BLOCK_CODES,
    HARD_CODES,
    RELAYED_CODES,
    SENDER_ADDRESS,
    best_status,
    last_reply_code,
    parts_of,
)
from sendwell.feedback.classify.wording import (
    ADDRESS,
    DISABLED,
    DNS_TEMPORARY,
    DOCUMENTED_DEAD,
    EXPIRED,
    GREYLIST,
    HOST_UNKNOWN,
    LOCAL_PROGRAM,
    LOOP,
    MAILBOX_FULL,
    MOVED,
    RELAY,
    SENDER_FAULT,
    SPAM,
    STAGE_DATA,
    STAGE_RCPT,
    TOO_LARGE,
    USER_UNKNOWN_ADDRESSED,
    USER_UNKNOWN_STRONG,
    USER_UNKNOWN_WEAK,
)

MAX_TEXT = 4_000


class _Words:
    """The diagnosis with each wording table searched at most once."""

    __slots__ = ("_seen", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._seen: dict[re.Pattern[str], bool] = {}

    def __call__(self, table: re.Pattern[str]) -> bool:
        found = self._seen.get(table)
        if found is None:
            found = self._seen[table] = table.search(self.text) is not None
        return found


@dataclass
class Evidence:
    """What a report says about one failed recipient."""

    status: str | None
    reply_code: str | None
    text: str  # lower-cased diagnosis
    final: bool = True  # the reporting MTA gave up; False for a live SMTP reply it will retry


def judge(ev: Evidence) -> tuple[str, str]:
    """(category, reason) for a failed delivery: hard, soft or block.

    Hard needs positive evidence that the address is dead; anything else is soft or block,
    because suppressing a live address loses a real contact for good while a dead one that
    slips through only bounces again (and the soft-bounce streak catches it).
    """
    status, reply, text = ev.status, ev.reply_code, ev.text[:MAX_TEXT]
    if status in RELAYED_CODES:
        status, remote_reply, text = _relayed_reply(text)
        reply = remote_reply or reply  # the wrapper's own 550 when the quoted reply has none
    klass, subject, detail = parts_of(status)
    if not klass and reply:
        klass = reply[0]
    # The diagnosis comes first in every report format; what follows is boilerplate or quoting.
    # Addresses are not wording: "filtered@example.jp" or "spam@…" must not read as a reason.
    words = _Words(ADDR_RE.sub(ADDRESS, text) if "@" in text else text)
    decided = _by_status(words, status, subject, detail)
    if decided is None:
        decided = _by_words(words, klass, subject)
    category, reason = decided
    if category == HARD:
        category, reason = _confirmed_dead(words, category, reason, subject, bool(status or reply))
    if klass == "4" and category == HARD and not (ev.final and subject == "1"):
        # RFC 3463 §3.1: 4.x.x is transient; only a final report of a dead address stays hard
        # (Postfix returns "450 4.1.1 user unknown" until the message expires).
        return SOFT, f"temporary failure ({reason})"
    return category, reason


def _relayed_reply(text: str) -> tuple[str | None, str | None, str]:
    """(status, reply code, text) of the remote server's own reply inside a relay's wrapper.

    Microsoft's 5.1.351 is not its own finding: it wraps whatever 550 the next server gave,
    "Remote server returned unknown recipient or mailbox unavailable -> <that reply>" (real NDRs
    wrap "Reject due to policy restrictions" the same way), so only the quoted reply is evidence.
    """
    _, arrow, rest = text.partition("->")
    remote = rest.split("\n", 1)[0].strip() if arrow else ""
    return best_status(remote), last_reply_code(remote), remote


def _confirmed_dead(has: _Words, category: str, reason: str, subject: str, coded: bool) -> tuple[str, str]:
    """A hard verdict kept only where the report confirms the address itself is dead.

    Where the reading stays ambiguous the verdict is soft: a soft bounce costs at most a few
    more sends before the soft-bounce streak suppresses a really dead address, a hard one
    loses a live buyer for good.
    """
    if has(LOCAL_PROGRAM):
        # A local delivery program (procmail, maildrop, a pipe) exited with an error; Postfix
        # maps its exit status onto a DSN status (sysexits EX_NOUSER -> 5.1.1), so the status
        # says what the program returned, not what the mail system knows of the mailbox.
        return SOFT, "local delivery program failed"
    if reason != "user unknown" or subject not in ("", "0", "3") or not coded or has(DOCUMENTED_DEAD):
        return category, reason
    # "User unknown" words under a reply code with no addressing status (X.1.x, RFC 3463 §3.2):
    # a bare 550 means "mailbox unavailable (e.g. mailbox not found, no access, or command
    # rejected for policy reasons)" (RFC 5321 §4.2.3), X.0.0 is undefined and X.3.x names the
    # mail system (RFC 3463 §3.4), and receivers do answer "550 Unknown user" to refuse a
    # sender at DATA. The words count only when the reply answered RCPT TO (RFC 5321 §3.3).
    # A report without any code is the mailbox system's own statement (Domino, Exchange).
    if has(STAGE_RCPT):
        return category, reason
    return SOFT, "user unknown without an addressing status or RCPT stage (unconfirmed)"


def _by_status(has: _Words, status: str | None, subject: str, detail: str) -> tuple[str, str] | None:
    """The verdict the enhanced status fixes on its own, or None when the wording must decide."""
    if status in BLOCK_CODES:
        return BLOCK, "refused by the receiver's sender policy"
    if status in HARD_CODES:
        return HARD, "host unknown" if subject == "4" else "user unknown"
    if subject == "1":  # RFC 3463 §3.2 addressing status
        if detail in SENDER_ADDRESS:
            return BLOCK, "sender address rejected"
        if detail in ADDRESS_DEAD:
            if has(SENDER_FAULT) and not has(USER_UNKNOWN_STRONG):
                return BLOCK, "policy rejection (sender's fault)"
            if detail == "2":
                return HARD, "host unknown"
            if detail == "6":
                return HARD, "mailbox moved"
            return HARD, "user unknown"
        return None
    if subject == "2":  # §3.3 mailbox status
        if detail == "2":
            return SOFT, "mailbox full"
        if detail == "3":
            return SOFT, "message too large"
        return None
    if subject == "3" and detail != "0":  # §3.4 mail system status: the system, not the address
        if detail == "4":
            return SOFT, "message too large"
        return SOFT, "receiving system problem"
    if subject == "4":  # §3.5 network and routing status
        if detail == "4" and not has(DNS_TEMPORARY):
            return HARD, "host unknown"
        if detail == "6":
            return SOFT, "mail loop"
        if detail == "7":
            return SOFT, "delivery expired"
        if detail in ("1", "2", "3", "4", "5"):
            # Microsoft answers "5.4.1 Recipient address rejected: Access denied" for unknown users.
            if has(USER_UNKNOWN_STRONG):
                return HARD, "user unknown"
            return SOFT, "temporary network failure"
        return None
    if subject == "6":  # §3.7 message content or media status
        return BLOCK, "content refused"
    if subject == "7":  # §3.8 security or policy status: words tell relaying and dead users apart
        # "User unknown" under a policy status in reply to DATA is a filter's answer: the
        # recipient already passed RCPT TO.
        at_data = has(STAGE_DATA) and not has(STAGE_RCPT)
        if has(USER_UNKNOWN_STRONG) and not (at_data or has(SENDER_FAULT) or has(SPAM)):
            return HARD, "user unknown"
        if has(RELAY):
            return SOFT, "relaying denied"
        if has(GREYLIST):
            return SOFT, "greylisted"
        return BLOCK, "policy rejection (sender's fault)"
    return None  # x.0.x and x.5.x (protocol) are used generically: the wording decides


def _by_words(has: _Words, klass: str, subject: str) -> tuple[str, str]:
    """The verdict from the diagnosis wording when the status is missing or generic."""
    if has(SENDER_FAULT):
        return BLOCK, "policy rejection (sender's fault)"
    if has(MAILBOX_FULL):
        return SOFT, "mailbox full"
    if has(TOO_LARGE):
        return SOFT, "message too large"
    if has(LOOP):
        return SOFT, "mail loop"
    if has(DISABLED):
        return SOFT, "mailbox disabled or suspended"
    if (has(USER_UNKNOWN_STRONG) or has(DOCUMENTED_DEAD)) and not has(SPAM):
        return HARD, "user unknown"
    if has(HOST_UNKNOWN) and not has(DNS_TEMPORARY):
        return HARD, "host unknown"
    if has(MOVED):
        return HARD, "mailbox moved"
    if has(SPAM):
        return BLOCK, "rejected as spam or by policy (sender's fault)"
    if has(RELAY):
        return SOFT, "relaying denied"
    if has(USER_UNKNOWN_WEAK):
        # A recipient that passed RCPT TO cannot be unknown at DATA: that is a content filter.
        if has(STAGE_DATA) and not has(STAGE_RCPT):
            return SOFT, "rejected after DATA (filtered)"
        if has(STAGE_RCPT) or has(USER_UNKNOWN_ADDRESSED):
            return HARD, "user unknown"
        return SOFT, "rejected (unconfirmed user unknown, likely filtered)"
    if has(EXPIRED):
        return SOFT, "delivery expired"
    if subject == "1" and klass == "5":
        return HARD, "address rejected"
    return SOFT, "undetermined failure"
