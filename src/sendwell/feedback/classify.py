"""Classify inbound feedback mail (DSN, ARF, auto-replies, provider webhooks) without a database."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any

_HEADER_PARSER = HeaderParser(policy=email.policy.compat32)
_LENIENT_JSON = json.JSONDecoder(strict=False)

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


# --- regexes (module level: compiled once; all linear, no nested unbounded quantifiers) -------

_ADDR_RE = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# RFC 3463 enhanced status: class.subject.detail
_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]\d)")
# RFC 5321 reply code: three digits, not part of a longer number, IP address or date
_REPLY_RE = re.compile(r"(?<![\d.:/=#A-Za-z])([45][0-5]\d)(?=[ \-;,'\"\]]|:[ \t]|$)", re.M)
_SUCCESS_REPLY_RE = re.compile(r"2\d\d\b")
_VERP_RE = re.compile(r"(?:^|[\s<:,\"])bounce\+([^@\s<>\"]+)@", re.I)
_TAG_RE = re.compile(r"<[^<>]{0,2000}>")
_HEADERISH_RE = re.compile(
    r"^[ \t>]*(?:to|from|cc|bcc|reply-to|sender|return-path|message-id|subject|date|received"
    r"|references|in-reply-to|x-[\w-]+|envelope-from|sent)[ \t]*:",
    re.I,
)
_TO_LINE_RE = re.compile(r"^[ \t>]*(?:to|cc)[ \t]*:(.*)$", re.I | re.M)
_MSGID_LINE_RE = re.compile(r"^[ \t]*message-id[ \t]*:[ \t]*(<[^<>\s]+>)", re.I | re.M)
# Where a plain-text bounce starts quoting the original message: text after this is not diagnosis.
_CUT_RE = re.compile(
    r"^.*(?:original message follows|original mail as follows|copy of the message"
    r"|header of the original message|message headers follow|original message:"
    r"|unsent message below|returned message follows).*$",
    re.I | re.M,
)
_DAEMON_LOCAL = frozenset(
    {"mailer-daemon", "postmaster", "post_master", "mail.delivery.system", "mailerdaemon", "mdaemon"}
)
_DAEMON_NAME_RE = re.compile(r"mail delivery|mailer-daemon|postmaster|ndr administrator", re.I)
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|delivery (?:status|fail|notification|report|problem)|returned mail|failure notice"
    r"|mail delivery failed|delivery has failed|could not be delivered|non-?delivery|loop alert"
    r"|error sending your mail|returned to sender"
    r"|unzustellbar|nicht zustellbar|[ée]chec de (?:la )?remise|non remis|non distribu|no se puede entregar"
    r"|no entregado|entrega fallida|系统退信|退信|无法投递|投递失败|未送达|未能送达",
    re.I,
)
_AUTOREPLY_SUBJECT_RE = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[ -]?(?:reply|response|responder|antwort)|vacation"
    r"|\baway\b|abwesen|absence|thank you for your (?:e-?mail|message)"
    # German, French, Spanish, Italian, Chinese subjects of vacation notices
    r"|automatische antwort|r[ée]ponse automatique|\babsente?\b|respuesta autom[áa]tica"
    r"|fuera de (?:la )?oficina|risposta automatica|fuori sede|自动回复|自動回覆|自动答复|休假|不在办公室",
    re.I,
)
_AUTOREPLY_BODY_RE = re.compile(
    r"out of (?:the )?office|on vacation|on holiday|currently away|i am (?:currently )?away"
    r"|limited access to (?:my )?e-?mail|(?:reply|respond|get back to you) (?:as soon as|upon my return)"
    r"|thank you for (?:you|your) e-?mail"
    r"|nicht im b[üu]ro|au(?:ß|ss)er haus|\babwesend\b|im urlaub|absente? du bureau|je suis absente?"
    r"|en cong[ée]s?\b|de retour le|fuera de la oficina|estar[ée] fuera|de vacaciones|\bausente\b"
    r"|休假|不在办公室|不在辦公室|外出|返回办公室|回到办公室",
    re.I,
)
_CHALLENGE_RE = re.compile(
    r"allowed list|whitelist|approved senders|verify (?:that )?you are|verification"
    r"|confirm (?:that )?you are a (?:real )?(?:person|human)|challenge",
    re.I,
)
_STAGE_DATA_RE = re.compile(r">>> DATA|end\s+of\s+DATA\s+command|in\s+reply\s+to\s+DATA", re.I)
_STAGE_RCPT_RE = re.compile(r"RCPT[ _]?TO|SMTP:RCPT|RCPT\s+command|in\s+reply\s+to\s+RCPT", re.I)

# Wording tables. Each is one alternation scanned once over the lower-cased diagnosis.
_W_SENDER = re.compile(
    r"too many (?:recipients|connections|messages)|rate limit|frequency limit|sending rate"
    r"|blocked ip|spamhaus|blacklist|black list|blocklist|dnsbl|\brbl\b|sender rejected"
    r"|sender address rejected|mismatches client ip|unverif(?:y|i)able sending|reverse dns"
    r"|ptr record|not rfc ?5322 compliant|spf (?:check )?fail|dkim|dmarc|authentication"
    r"|not authorized to send|client host rejected"
)
_W_SPAM = re.compile(
    r"\bspam\b|unsolicited|\bube\b|content rejected|bulk e-?mail filter|virus|malware|phishing"
    r"|blocked by|message rejected|policy"
)
_W_FULL = re.compile(
    r"mailbox (?:is )?full|mailbox full|over ?quota|quota exceeded|exceeds? (?:the )?(?:allowed|storage)"
    r"|user mailbox exceeds|insufficient (?:system )?storage|disk quota|mailbox size limit"
    r"|postfach (?:ist )?voll|speicherplatz|bo[iî]te (?:aux lettres |de r[ée]ception )?(?:est )?pleine"
    r"|buz[óo]n (?:est[áa] )?lleno|cuota excedida|邮箱已满|邮箱空间已满|空间不足|容量已满|信箱已滿"
)
_W_SIZE = re.compile(r"message too (?:large|big)|message size exceeds|too large")
_W_LOOP = re.compile(r"mail loop|loop (?:alert|detected)|duplicated message-id|too many hops")
_W_EXPIRED = re.compile(
    r"retry timeout exceeded|retry time exceeded|could not deliver for the last|giving up"
    r"|cannot send message for|message expired|timed out|delivery time expired|queue too long"
)
_W_HOST = re.compile(
    r"host or domain name not found|host not found|domain not found|no such domain"
    r"|illegal host/domain|invalid domain|unrouteable (?:address|domain)|name service error"
    r"|domain (?:name )?(?:does not|doesn't) exist|no mx|domaine inconnu|域名不存在"
)
_W_DISABLED = re.compile(
    r"mailbox disabled|account (?:has been )?disabled|account (?:is )?inactive|has moved"
)
# Unambiguous "this mailbox does not exist" wording.
_W_USER_STRONG = re.compile(
    r"no such (?:user|mailbox|recipient)|not listed in (?:the )?(?:domino )?directory"
    r"|recipient name is not recognized|invalid final delivery userid|no valid recipients"
    r"|invalid (?:user|recipient|mailbox) address|user (?:does not|doesn't) exist"
    r"|mailbox (?:does not|doesn't) exist|address does not exist|unknown recipient"
    r"|(?:does not|doesn't) have an? [\w.-]+ account"
    r"|benutzer unbekannt|unbekannte[rn]? (?:benutzer|empf[äa]nger)|empf[äa]nger unbekannt|existiert nicht"
    r"|utilisateur inconnu|destinataire inconnu|adresse inconnue|n'existe pas|usuario desconocido"
    r"|destinatario desconocido|no existe|用户不存在|收件人不存在|邮箱不存在|帐户不存在|账户不存在|账号不存在"
    r"|地址不存在|用戶不存在"
)
# Bare "user unknown": spam appliances also answer this to reject content (sisimai's "filtered"),
# so it needs corroboration before it may suppress a contact.
_W_USER_WEAK = re.compile(r"user unknown|unknown user|recipient not found|unknown address|invalid recipient")
_W_DELAY_NOTICE = re.compile(r"has not yet been delivered|delivery (?:is )?delayed|will (?:continue|retry)")


# --- small helpers ------------------------------------------------------------------------


def _normalise(raw: bytes) -> bytes:
    # The corpus mixes LF, CRLF and CR-only files; the email parser copes best with one style.
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return raw


def _addr(value: object) -> str | None:
    """One lower-cased address out of a header or DSN field ("rfc822; <a@b>" → "a@b")."""
    if not value:
        return None
    # compat32 hands back email.header.Header objects for fields with raw 8-bit bytes.
    value = " ".join(str(value).split())
    if ";" in value:  # RFC 3464 §2.3.2: address-type ";" generic-address
        value = value.split(";", 1)[1]
    match = _ADDR_RE.search(value)
    return match.group(0).lower().strip(".") if match else None


def _header_addrs(msg: Message, *names: str) -> set[str]:
    found: set[str] = set()
    for name in names:
        values = msg.get_all(name) or []
        for _, address in getaddresses([str(v) for v in values]):
            if "@" in address:
                found.add(address.lower())
    return found


def _text_of(part: Message) -> str:
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


def _subject(msg: Message) -> str:
    # RFC 2047 encoded words: vacation notices in other languages almost always use them.
    value = str(msg.get("Subject", "") or "")
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # hostile encoded words (bad charset names, broken base64): keep the raw text
        return value


def _is_daemon(msg: Message) -> bool:
    name, address = parseaddr(str(msg.get("From", "")))
    local = (address or name).split("@", 1)[0].lower()
    return local in _DAEMON_LOCAL or bool(_DAEMON_NAME_RE.search(name or ""))


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


def _best_status(*texts: str | None) -> str | None:
    """The most specific enhanced status in the texts: a non-zero detail beats x.y.0; later beats earlier."""
    best: str | None = None
    best_rank = -1
    for text in texts:
        if not text:
            continue
        for match in _STATUS_RE.finditer(text):
            code = ".".join(match.groups())
            rank = (match.group(2) != "0") + (match.group(3) != "0")
            if rank >= best_rank:
                best, best_rank = code, rank
    return best


def _reply_code(text: str | None) -> str | None:
    if not text:
        return None
    match = _REPLY_RE.search(text)
    return match.group(1) if match else None


def _last_reply_code(text: str) -> str | None:
    # Relays quote the remote reply after their own ("554 ... <421 4.4.2 ...>"): keep the inner one.
    codes = _REPLY_RE.findall(text)
    return codes[-1] if codes else None


def _verp_token(msg: Message) -> str | None:
    # Envelope headers first: they carry the address the MTA used, before any display mangling.
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"):
        for value in msg.get_all(name) or []:
            match = _VERP_RE.search(str(value))
            if match:
                return match.group(1)
    return None


def _message_id(msg: Message | None) -> str | None:
    if msg is None:
        return None
    value = msg.get("Message-ID")
    return " ".join(str(value).split()) if value else None


# --- the decision -------------------------------------------------------------------------


@dataclass
class _Evidence:
    status: str | None
    reply_code: str | None
    text: str  # lower-cased diagnosis
    structured: bool = False  # came from an RFC 3464 per-recipient block with Action: failed
    default_hard: bool = True


def _judge(ev: _Evidence) -> tuple[str, str, bool]:
    """(kind, reason, is_sender_fault) for a failed delivery, from status, reply code and wording."""
    status, text = ev.status, ev.text
    klass = status[0] if status else (ev.reply_code[0] if ev.reply_code else None)
    sub = status[2:] if status else ""

    # Rate limits, blocklists and authentication failures look like any 5xx but say nothing
    # about the mailbox: the sender must fix them (COMPLIANCE row 26: alert, do not suppress).
    if _W_SENDER.search(text) or sub in ("1.7", "1.8") or sub.startswith("7."):
        reason = "policy rejection (sender's fault)"
        if _W_SPAM.search(text) and not _W_SENDER.search(text):
            reason = "rejected as spam (sender's fault)"
        return SOFT, reason, True
    if klass == "4":  # RFC 3463 §3.1: 4.x.x is a persistent transient failure
        if _W_FULL.search(text) or sub == "2.2":
            return SOFT, "mailbox full", False
        if sub.startswith("4.") or _W_EXPIRED.search(text):
            return SOFT, "temporary network failure / expired", False
        return SOFT, "temporary failure", False
    # RFC 3463: X.2.2 mailbox full is transient by nature even when reported as 5.2.2.
    if sub == "2.2" or _W_FULL.search(text):
        return SOFT, "mailbox full", False
    if sub == "3.4" or _W_SIZE.search(text):
        return SOFT, "message too large", False
    # RFC 3463 §3.2/§3.3/§3.5: addressing and mailbox statuses name the recipient directly.
    if klass == "5" and sub in ("1.2", "4.4"):
        return HARD, "host unknown", False
    if klass == "5" and sub in ("1.6", "2.1"):
        return HARD, "mailbox disabled or moved", False
    if klass == "5" and sub in ("1.1", "1.10", "1.0", "1.3"):
        return HARD, "user unknown", False
    if _W_SPAM.search(text):
        return SOFT, "rejected as spam (sender's fault)", True
    if _W_LOOP.search(text):
        return SOFT, "mail loop", False
    if _W_HOST.search(text):
        return HARD, "host unknown", False
    if _W_DISABLED.search(text):
        return HARD, "mailbox disabled or moved", False

    strong = _W_USER_STRONG.search(text)
    weak = _W_USER_WEAK.search(text)
    if strong or weak:
        # A recipient that passed RCPT TO cannot be unknown at DATA: that is a content filter.
        if _STAGE_DATA_RE.search(text) and not _STAGE_RCPT_RE.search(text):
            return SOFT, "rejected after DATA (filtered)", False
        if strong or _STAGE_RCPT_RE.search(text):
            return HARD, "user unknown", False
        specific = status is not None and sub not in ("0.0",)
        if ev.structured and not specific:
            return HARD, "user unknown", False
        return SOFT, "rejected (unconfirmed user unknown, likely filtered)", False
    if _W_EXPIRED.search(text):
        return SOFT, "delivery expired", False
    if klass == "5" and ev.default_hard:
        # COMPLIANCE row 26: Action failed + 5.x.x with nothing pointing elsewhere is permanent.
        return HARD, "permanent failure", False
    return SOFT, "undetermined failure", False


# --- message structure --------------------------------------------------------------------


@dataclass
class _Parts:
    texts: list[str]
    dsn_blocks: list[Message]
    feedback: Message | None
    original: Message | None


def _collect(msg: Message) -> _Parts:
    parts = _Parts([], [], None, None)
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
                parts.original = _HEADER_PARSER.parsestr(_text_of(part).lstrip())
        elif part.is_multipart():
            for sub in part.get_payload():
                visit(sub)
        elif part.get_content_maintype() == "multipart":
            # Broken MIME (boundary parameter lost): keep the raw text so wording still counts.
            parts.texts.append(_text_of(part))
        elif ctype == "text/plain" or part.get_content_maintype() == "text" and ctype != "text/html":
            if not part.get_filename() or not parts.texts:
                parts.texts.append(_text_of(part))
        elif ctype == "text/html":
            html.append(_TAG_RE.sub(" ", _text_of(part)))

    visit(msg)
    if not parts.texts and html:
        parts.texts.extend(html)
    return parts


def _split_text(text: str) -> tuple[str, str]:
    """(diagnosis, quoted original) of a plain-text bounce."""
    match = _CUT_RE.search(text)
    if not match:
        return text, ""
    return text[: match.start()], text[match.end():]


def _scan_addrs(text: str, exclude: set[str]) -> list[str]:
    found: list[str] = []
    for line in text.splitlines():
        if "@" not in line or _HEADERISH_RE.match(line):
            continue
        for match in _ADDR_RE.finditer(line):
            address = match.group(0).lower().strip(".-")
            local = address.split("@", 1)[0]
            if address in exclude or local in _DAEMON_LOCAL:
                continue
            found.append(address)
    return found


def _to_line_addrs(text: str, exclude: set[str]) -> list[str]:
    found: list[str] = []
    for match in _TO_LINE_RE.finditer(text):
        for address in _ADDR_RE.findall(match.group(1)):
            address = address.lower()
            if address not in exclude:
                found.append(address)
    return found


# --- the kinds ----------------------------------------------------------------------------


def _from_feedback(msg: Message, parts: _Parts, common: dict[str, Any]) -> Classification:
    report = parts.feedback
    assert report is not None
    ftype = " ".join(str(report.get("Feedback-Type", "")).split()).lower() or None
    rcpts = [a for a in (_addr(v) for v in report.get_all("Original-Rcpt-To") or []) if a]
    if not rcpts:
        rcpts = [a for a in (_addr(v) for v in report.get_all("Removal-Recipient") or []) if a]
    if not rcpts and parts.original is not None:
        rcpts = sorted(_header_addrs(parts.original, "To"))
    # RFC 5965 §7.3: abuse, fraud and virus are people's complaints; RFC 6591 auth-failure is a
    # DKIM/SPF failure report and not-spam is the opposite of a complaint.
    if ftype in ("abuse", "fraud", "virus"):
        kind, reason = COMPLAINT, f"{ftype} complaint"
    elif ftype == "auth-failure":
        kind, reason = OTHER, "authentication failure report"
    else:
        kind, reason = OTHER, f"feedback report ({ftype or 'unknown type'})"
    return Classification(
        kind=kind,
        recipients=_dedupe(rcpts),
        reason=reason,
        feedback_type=ftype,
        original_message_id=_message_id(parts.original),
        **common,
    )


def _from_dsn(msg: Message, parts: _Parts, common: dict[str, Any]) -> Classification | None:
    records = []
    for block in parts.dsn_blocks:
        rcpt = _addr(block.get("Final-Recipient")) or _addr(block.get("Original-Recipient"))
        if rcpt is None:
            continue
        action = " ".join(str(block.get("Action", "")).split()).lower()
        status_field = str(block.get("Status", "") or "")
        diag = " ".join(str(block.get("Diagnostic-Code", "") or "").split())
        records.append((rcpt, action, status_field, diag))
    if not records:
        return None
    failed = [r for r in records if r[1].startswith("failed")] or [
        r for r in records if not r[1].startswith(("delivered", "relayed", "expanded", "delayed"))
    ]
    notification = _split_text("\n".join(parts.texts))[0]
    if failed:
        rcpt, action, status_field, diag = failed[0]
        # The remote server's own code quoted in Diagnostic-Code is more precise than the
        # Status the reporting MTA synthesised (e.g. SES reports 5.0.0 for a quoted 5.2.2).
        status = _best_status(status_field, diag)
        reply = _last_reply_code(diag.split(";", 1)[-1]) or _reply_code(notification)
        text = f"{diag}\n{notification}".lower() if diag else notification.lower()
        ev = _Evidence(status, reply, text, structured=action.startswith("failed") or bool(diag))
        kind, reason, sender_fault = _judge(ev)
        return Classification(
            kind=kind,
            recipients=_dedupe(r[0] for r in failed),
            status=status,
            reason=reason,
            reply_code=reply,
            is_sender_fault=sender_fault,
            original_message_id=_message_id(parts.original),
            **common,
        )
    delayed = [r for r in records if r[1].startswith("delayed")]
    if delayed:
        # RFC 3464 §2.3.3 "delayed": still queued; COMPLIANCE row 27 says never suppress on it.
        rcpt, _, status_field, diag = delayed[0]
        return Classification(
            kind=SOFT,
            recipients=_dedupe(r[0] for r in delayed),
            status=_best_status(status_field, diag),
            reason="delivery delayed",
            reply_code=_reply_code(diag.split(";", 1)[-1]),
            is_delay=True,
            original_message_id=_message_id(parts.original),
            **common,
        )
    rcpt, action, status_field, diag = records[0]
    return Classification(
        kind=OTHER,
        recipients=_dedupe(r[0] for r in records),
        status=_best_status(status_field, diag),
        reason=f"delivery succeeded ({action or 'success'})",
        reply_code=_reply_code(diag.split(";", 1)[-1]),
        original_message_id=_message_id(parts.original),
        **common,
    )


def _from_plain_bounce(msg: Message, parts: _Parts, common: dict[str, Any]) -> Classification:
    text = "\n".join(parts.texts)
    diagnosis, quoted = _split_text(text)
    exclude = _header_addrs(msg, "From", "To", "Return-Path", "Reply-To", "Sender")
    failed_hdr = [a.strip().lower() for a in str(msg.get("X-Failed-Recipients", "")).split(",") if "@" in a]
    rcpts = failed_hdr or _scan_addrs(diagnosis, exclude)
    if not rcpts:
        rcpts = _to_line_addrs(diagnosis, exclude) or _to_line_addrs(quoted, exclude)
    if not rcpts and parts.original is not None:
        rcpts = sorted(_header_addrs(parts.original, "To") - exclude)
    status = _best_status(diagnosis)
    reply = _reply_code(diagnosis)
    lowered = diagnosis.lower()
    original_id = _message_id(parts.original)
    if original_id is None:
        match = _MSGID_LINE_RE.search(quoted or diagnosis)
        original_id = match.group(1) if match else None
    subject = _subject(msg)
    if _W_DELAY_NOTICE.search(lowered) and re.search(r"warning|delayed", subject, re.I):
        # Exim/Postfix delay warnings: the MTA is still retrying (RFC 3464 "delayed" in prose).
        return Classification(
            kind=SOFT,
            recipients=_dedupe(rcpts),
            status=status,
            reason="delivery delayed",
            reply_code=reply,
            is_delay=True,
            is_sender_fault=bool(_W_SENDER.search(lowered)),
            original_message_id=original_id,
            **common,
        )
    kind, reason, sender_fault = _judge(_Evidence(status, reply, lowered, default_hard=True))
    return Classification(
        kind=kind,
        recipients=_dedupe(rcpts),
        status=status,
        reason=reason,
        reply_code=reply,
        is_sender_fault=sender_fault,
        original_message_id=original_id,
        **common,
    )


def _looks_like_bounce(msg: Message, parts: _Parts) -> bool:
    if msg.get("X-Failed-Recipients"):
        return True
    subject = _subject(msg)
    if _BOUNCE_SUBJECT_RE.search(subject):
        return True
    if _is_daemon(msg):
        return True
    return False


def _is_auto_reply(msg: Message, body: str) -> bool:
    # RFC 3834 §5: Auto-Submitted other than "no" marks automatic mail; auto-replied is a response.
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto.startswith("auto-replied"):
        return True
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder")):
        return True
    subject = _subject(msg)
    precedence = str(msg.get("Precedence", "")).strip().lower()
    # Older autoresponders only set Precedence: bulk/junk/auto_reply (RFC 3834 §3.1.8 notes it).
    if precedence in ("bulk", "junk", "auto_reply", "list"):
        return bool(_AUTOREPLY_SUBJECT_RE.search(subject) or _AUTOREPLY_BODY_RE.search(body))
    return bool(_AUTOREPLY_SUBJECT_RE.search(subject) and _AUTOREPLY_BODY_RE.search(body))


def _nested_report(msg: Message | None) -> bool:
    return msg is not None and msg.get_content_type() == "multipart/report"


def _embedded_json(body: str) -> Any:
    start = body.find("{")
    if start < 0 or body[:start].strip():
        return None
    try:
        # strict=False: mail transport may fold a long JSON string across lines.
        value, _ = _LENIENT_JSON.raw_decode(body[start:])
    except ValueError:
        return None
    return value


def classify_message(raw: bytes) -> Classification:
    """Classify one raw inbound message (LF, CRLF or CR line endings)."""
    msg = email.message_from_bytes(_normalise(raw), policy=email.policy.compat32)
    common = {"verp_token": _verp_token(msg)}
    parts = _collect(msg)

    if parts.feedback is not None and parts.feedback.get("Feedback-Type") is not None:
        return _from_feedback(msg, parts, common)
    if parts.dsn_blocks:
        result = _from_dsn(msg, parts, common)
        if result is not None:
            return result
    elif _nested_report(parts.original) and _is_daemon(msg):
        # A gateway re-wrapped the real DSN as an attachment (message/rfc822 inside a notice).
        inner = _collect(parts.original)
        if inner.dsn_blocks:
            result = _from_dsn(parts.original, inner, common)
            if result is not None:
                return result

    body = "\n".join(parts.texts)
    # SES delivers its notifications by e-mail too (via SNS): a JSON document as the body.
    if body.lstrip().startswith("{"):
        payload = _embedded_json(body)
        if isinstance(payload, dict):
            events = classify_provider_json(payload)
            if events:
                first = events[0]
                rcpts = _dedupe(r for e in events for r in e.recipients)
                return _replace(first, recipients=rcpts, verp_token=first.verp_token or common["verp_token"])

    if not _is_daemon(msg) and _is_auto_reply(msg, body):
        sender = _header_addrs(msg, "From")
        return Classification(
            kind=AUTO_REPLY, recipients=_dedupe(sorted(sender)), reason="vacation auto-reply", **common
        )
    if _looks_like_bounce(msg, parts):
        return _from_plain_bounce(msg, parts, common)
    if _CHALLENGE_RE.search(body):
        sender = _header_addrs(msg, "From")
        return Classification(
            kind=OTHER, recipients=_dedupe(sorted(sender)), reason="challenge-response", **common
        )
    return Classification(kind=OTHER, reason="not a bounce", **common)


def _replace(item: Classification, **changes: Any) -> Classification:
    data = {name: getattr(item, name) for name in item.__dataclass_fields__}
    data.update(changes)
    return Classification(**data)


# --- provider webhooks --------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    # Webhook bodies come from outside: a wrong shape should yield no event, not a crash.
    return value if isinstance(value, dict) else {}


def _ses(payload: dict[str, Any]) -> list[Classification]:
    kind_field = payload.get("notificationType") or payload.get("eventType") or ""
    mail = _dict(payload.get("mail"))
    # commonHeaders carries the Message-ID we set (it names our send); mail.messageId is SES's own.
    message_id = _dict(mail.get("commonHeaders")).get("messageId") or mail.get("messageId")
    out: list[Classification] = []
    if kind_field == "Bounce":
        bounce = _dict(payload.get("bounce"))
        btype = str(bounce.get("bounceType", ""))
        subtype = str(bounce.get("bounceSubType", ""))
        for rcpt in map(_dict, bounce.get("bouncedRecipients") or []):
            if not rcpt.get("emailAddress"):
                continue
            status = str(rcpt.get("status") or "")
            diag = str(rcpt.get("diagnosticCode") or "")
            reply = _reply_code(diag.split(";", 1)[-1])
            if btype == "Permanent":
                # SES has already decided the failure is permanent (General, NoEmail, Suppressed…).
                ev = _Evidence(_best_status(status, diag), reply, f"{diag} {subtype}".lower())
                kind, reason, fault = _judge(ev)
                if kind != HARD and not fault:
                    kind, reason = HARD, f"permanent bounce ({subtype or 'General'})"
            else:
                kind, fault = SOFT, False
                reason = f"transient bounce ({subtype or 'General'})"
                if subtype == "MailboxFull":
                    reason = "mailbox full"
            out.append(
                Classification(
                    kind=kind,
                    recipients=_dedupe([str(rcpt.get("emailAddress", "")).lower()]),
                    status=_best_status(status, diag),
                    reason=reason,
                    reply_code=reply,
                    is_sender_fault=fault,
                    original_message_id=message_id,
                )
            )
    elif kind_field == "Complaint":
        complaint = _dict(payload.get("complaint"))
        ftype = complaint.get("complaintFeedbackType")
        kind = OTHER if ftype in ("not-spam", "auth-failure") else COMPLAINT
        for rcpt in map(_dict, complaint.get("complainedRecipients") or []):
            out.append(
                Classification(
                    kind=kind,
                    recipients=_dedupe([str(rcpt.get("emailAddress", "")).lower()]),
                    reason="abuse complaint" if kind == COMPLAINT else f"feedback ({ftype})",
                    feedback_type=ftype or ("abuse" if kind == COMPLAINT else None),
                    original_message_id=message_id,
                )
            )
    elif kind_field in ("Delivery", "DeliveryDelay"):
        details = _dict(payload.get("delivery") or payload.get("deliveryDelay"))
        recipients = details.get("recipients") or [
            _dict(r).get("emailAddress", "") for r in details.get("delayedRecipients") or []
        ]
        smtp = str(details.get("smtpResponse") or "")
        is_delay = kind_field == "DeliveryDelay"
        for address in recipients:
            out.append(
                Classification(
                    kind=SOFT if is_delay else OTHER,
                    recipients=_dedupe([str(address).lower()]),
                    status=_best_status(smtp),
                    reason="delivery delayed" if is_delay else "delivered",
                    reply_code=_reply_code(smtp) or _SUCCESS_REPLY_RE.match(smtp) and smtp[:3] or None,
                    is_delay=is_delay,
                    original_message_id=message_id,
                )
            )
    return out


def _sendgrid(event: dict[str, Any]) -> Classification:
    name = str(event.get("event", "")).lower()
    rcpt = _dedupe([str(event.get("email", "")).lower()])
    status = _best_status(str(event.get("status", "")))
    reason_text = str(event.get("reason") or event.get("response") or "")
    reply = _reply_code(reason_text)
    message_id = event.get("sg_message_id") or event.get("smtp-id")
    base = {"recipients": rcpt, "status": status, "reply_code": reply, "original_message_id": message_id}
    if name == "bounce":
        ev = _Evidence(status, reply, reason_text.lower())
        kind, reason, fault = _judge(ev)
        if str(event.get("type", "bounce")).lower() == "blocked":
            # SendGrid "blocked": the receiver refused this message, not necessarily the address.
            kind = SOFT
            if reason in ("permanent failure", "user unknown"):
                reason = "blocked"
        return Classification(kind=kind, reason=reason, is_sender_fault=fault, **base)
    if name == "deferred":
        return Classification(kind=SOFT, reason="delivery delayed", is_delay=True, **base)
    if name == "spamreport":
        return Classification(kind=COMPLAINT, reason="abuse complaint", feedback_type="abuse", **base)
    if name == "dropped":
        lowered = reason_text.lower()
        if "spam" in lowered:
            return Classification(
                kind=COMPLAINT, reason="dropped: previous spam report", feedback_type="abuse", **base
            )
        if "bounce" in lowered or "invalid" in lowered:
            return Classification(kind=HARD, reason=f"dropped: {reason_text}", **base)
        return Classification(kind=OTHER, reason=f"dropped: {reason_text or 'unspecified'}", **base)
    return Classification(kind=OTHER, reason=f"provider event ({name or 'unknown'})", **base)


def classify_provider_json(payload: dict[str, Any] | list[Any]) -> list[Classification]:
    """Classify an Amazon SES (raw or SNS-wrapped) notification or a SendGrid event array."""
    if isinstance(payload, list):
        return [_sendgrid(e) for e in payload if isinstance(e, dict) and "event" in e]
    if not isinstance(payload, dict):
        return []
    if "Message" in payload and isinstance(payload["Message"], str):  # SNS envelope
        try:
            inner = _LENIENT_JSON.decode(payload["Message"])
        except ValueError:
            return []
        return classify_provider_json(inner)
    if "event" in payload and "email" in payload:
        return [_sendgrid(payload)]
    return _ses(payload)


def classify_smtp_reply(recipient: str, code: int, message: str) -> Classification:
    """Judge a synchronous SMTP reply to our own delivery attempt (RCPT or DATA) like a bounce.

    A 4xx means our sender will retry, so it is a delay and never counts towards a streak.
    """
    recipients = _dedupe([recipient.strip().lower()])
    if not 400 <= code < 600:
        return Classification(kind=OTHER, recipients=recipients, reason="accepted", reply_code=str(code))
    status = _best_status(message)
    text = f"{code} {message}".lower()
    kind, reason, fault = _judge(_Evidence(status, str(code), text, structured=True))
    return Classification(kind=kind, recipients=recipients, status=status, reason=reason, reply_code=str(code),
                          is_sender_fault=fault, is_delay=code < 500)


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
