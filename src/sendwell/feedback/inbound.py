"""Inbound mail, routed by envelope recipient: bounces, mailto opt-outs and replies to campaigns."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db.models import Campaign, Contact, Send
from sendwell.feedback.classify.message import classify_message
from sendwell.feedback.classify.mime import decode_text
from sendwell.feedback.classify.result import AUTO_REPLY, COMPLAINT, HARD, SOFT
from sendwell.feedback.dmarc_store import ingest_mail
from sendwell.feedback.service import FeedbackOutcome, record_feedback
from sendwell.insight.engagement import record_engagement
from sendwell.optout.service import unsubscribe_contact
from sendwell.optout.tokens import InvalidToken, read_mailto_token
from sendwell.suppression.service import hash_email

BOUNCE_LOCAL = "bounce"
UNSUBSCRIBE_LOCAL = "unsubscribe"


@dataclass
class InboundResult:
    """What happened to one message for one envelope recipient."""

    rcpt: str
    route: str  # bounce | mailto | reply | dmarc | foreign
    action: str  # a FeedbackOutcome action, or unsubscribed | already_unsubscribed | forged_token |
    #              unknown_contact | ignored | refused
    contact_id: int | None = None
    outcomes: list[FeedbackOutcome] = field(default_factory=list)


def raw_ref_of(raw: bytes) -> str:
    """A stable reference to a raw message, so the same mail processed twice counts once."""
    # Line endings differ between SMTP (CRLF) and mailbox files (LF): the same mail, one reference.
    return "sha256:" + hashlib.sha256(raw.replace(b"\r\n", b"\n").rstrip()).hexdigest()[:32]


def split_address(address: str) -> tuple[str, str, str]:
    """(base local part, +detail, domain), lower-cased: `Bounce+12.ab@X.org` → ("bounce", "12.ab", "x.org")."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base, _, detail = local.partition("+")
    return base.lower(), detail, domain.lower()


def route_of(address: str, settings: Settings) -> str:
    """Which inbound path an envelope recipient takes: bounce, mailto, reply, or foreign (refused)."""
    base, detail, domain = split_address(address)
    if domain not in settings.inbound_domain_list:
        return "foreign"
    if base == BOUNCE_LOCAL:
        return "bounce"
    if base == UNSUBSCRIBE_LOCAL:
        return "mailto"
    return "reply"


def process_inbound(
    session: Session,
    *,
    raw: bytes,
    rcpt_to: list[str],
    settings: Settings,
    source: str = "smtp",
    now: datetime | None = None,
) -> list[InboundResult]:
    """Route one inbound message by its envelope recipients; flushes, the adapter commits."""
    now = now or datetime.now(timezone.utc)
    raw_ref = raw_ref_of(raw)
    ours = [a.strip().lower() for a in rcpt_to if a.strip() and route_of(a, settings) != "foreign"]
    report = ingest_mail(session, raw=raw, settings=settings, source=source, now=now) if ours else None
    if report is not None:  # a DMARC aggregate report (rua=mailto:): its own tables, not the classifier
        return [InboundResult(rcpt, "dmarc", report.action) for rcpt in dict.fromkeys(ours)]
    results = []
    for rcpt in dict.fromkeys(a.strip().lower() for a in rcpt_to if a.strip()):
        route = route_of(rcpt, settings)
        if route == "bounce":
            results.append(_bounce(session, raw, rcpt, settings, raw_ref, source, now))
        elif route == "mailto":
            results.append(_mailto(session, raw, rcpt, settings, now))
        elif route == "reply":
            results.append(_reply(session, raw, rcpt, settings, raw_ref, source, now))
        else:
            results.append(InboundResult(rcpt, "foreign", "refused"))
    session.flush()
    return results


def _summarise(rcpt: str, route: str, outcomes: list[FeedbackOutcome]) -> InboundResult:
    first = outcomes[0] if outcomes else None
    return InboundResult(rcpt, route, first.action if first else "ignored",
                         contact_id=first.contact_id if first else None, outcomes=outcomes)


def message_references(raw: bytes) -> list[str]:
    """Message-IDs named anywhere in a report: its own and quoted Message-ID / In-Reply-To / References lines.

    Returned headers come as a message/rfc822 or text/rfc822-headers part, or quoted in the
    text ("> Message-ID: …") by MTAs that write plain bounces; one scan finds them all.
    """
    text = raw[:_REFERENCE_SCAN].decode("latin-1")
    found: list[str] = []
    for match in _REFERENCE_LINE.finditer(text):
        found.extend(_MESSAGE_ID.findall(match.group(1)))
    return list(dict.fromkeys(found))[:_MAX_REFERENCES]


_REFERENCE_SCAN = 1024 * 1024  # the returned headers are near the start; a quoted attachment is not read
_MAX_REFERENCES = 50
_REFERENCE_LINE = re.compile(r"(?im)^[ \t>]*(?:message-id|in-reply-to|references)[ \t]*:((?:.*)(?:\r?\n[ \t]+.*)*)")
_MESSAGE_ID = re.compile(r"<[^<>\s]{3,250}>")


_DIAGNOSTIC_LINE = re.compile(r"(?im)^(?:diagnostic-code[ \t]*:[ \t]*(?:smtp;)?[ \t]*|[ \t]*)([45]\d\d[ -].*(?:\r?\n[ \t]+.*)*)")


def diagnostic_of(raw: bytes) -> str:
    """The remote server's own words in a bounce: Diagnostic-Code fields, else SMTP reply lines (for alerts)."""
    text = raw[:_REFERENCE_SCAN].decode("utf-8", errors="replace")
    lines = [" ".join(m.group(1).split()) for m in _DIAGNOSTIC_LINE.finditer(text)]
    return " | ".join(dict.fromkeys(lines))[:1000]


def _reporter(raw: bytes) -> str | None:
    _, address = parseaddr(str(_parse(raw).get("From", "")))
    return address.lower() if "@" in address else None


def _bounce(session: Session, raw: bytes, rcpt: str, settings: Settings, raw_ref: str, source: str,
            now: datetime) -> InboundResult:
    # The envelope recipient is the VERP address our MTA used: more trustworthy than any header.
    _, detail, _ = split_address(rcpt)
    classification = classify_message(raw)
    outcomes = record_feedback(session, classification=classification, settings=settings, raw_ref=raw_ref,
                               source=source, verp_detail=detail or None, references=message_references(raw),
                               raw=raw, reporter=_reporter(raw), diagnostic=diagnostic_of(raw), now=now)
    return _summarise(rcpt, "bounce", outcomes)


def _mailto(session: Session, raw: bytes, rcpt: str, settings: Settings, now: datetime) -> InboundResult:
    _, token, _ = split_address(rcpt)
    msg = _parse(raw)
    if not token:
        # Mail to the bare unsubscribe address: the sender asks to leave (CAN-SPAM reply opt-out).
        contact = _contact_by_from(session, msg, settings)
        if contact is None:
            return InboundResult(rcpt, "mailto", "unknown_contact")
        return _unsubscribe(session, rcpt, "mailto", contact.id, None, now, msg, review=True)
    try:
        data = read_mailto_token(settings.secret_keys, token)
    except InvalidToken:
        # RFC 8058 §6 applies to mailto too: a forged token changes nothing.
        return InboundResult(rcpt, "mailto", "forged_token")
    return _unsubscribe(session, rcpt, "mailto", data.contact_id, data.campaign_id, now, msg)


def _unsubscribe(session: Session, rcpt: str, method: str, contact_id: int, campaign_id: int | None,
                 now: datetime, msg: Message, review: bool = False) -> InboundResult:
    # The law asks us to honour a written opt-out even unauthenticated (the thank-you mail's undo
    # is the remedy for a forged one); what the receiving MTA said about its sender is kept.
    data: dict[str, Any] = {"authentication": authentication_of(msg)}
    if review:
        data["review"] = True
    result = unsubscribe_contact(session, contact_id=contact_id, method=method, campaign_id=campaign_id, now=now,
                                 data=data)
    if result is None:
        return InboundResult(rcpt, "mailto" if method == "mailto" else "reply", "unknown_contact")
    route = "mailto" if method == "mailto" else "reply"
    return InboundResult(rcpt, route, "unsubscribed" if result.is_new else "already_unsubscribed",
                         contact_id=contact_id)


_AUTH_VERDICT = re.compile(r"(?i)\b(dkim|spf|dmarc|arc)\s*=\s*([a-z]+)")


def authentication_of(msg: Message) -> dict[str, Any]:
    """The Authentication-Results of an inbound mail (RFC 8601) and the verdicts of the topmost one.

    The topmost header is the one our own receiving MTA added last; lower ones were added on
    the way and only say what earlier hops claimed.
    """
    headers = [" ".join(str(v).split())[:1000] for v in (msg.get_all("Authentication-Results") or [])][:5]
    verdicts: dict[str, str] = {}
    if headers:
        for name, verdict in _AUTH_VERDICT.findall(headers[0]):
            verdicts.setdefault(name.lower(), verdict.lower())
    return {"results": headers, **verdicts}


def _reply(session: Session, raw: bytes, rcpt: str, settings: Settings, raw_ref: str, source: str,
           now: datetime) -> InboundResult:
    classification = classify_message(raw)
    if classification.kind in (AUTO_REPLY, HARD, SOFT, COMPLAINT) or classification.feedback_type:
        # Auto-replies name our mail in In-Reply-To; some MTAs bounce to From instead of the
        # Return-Path. Either way only our Message-ID, sent to that recipient, names the contact.
        outcomes = record_feedback(session, classification=classification, settings=settings, raw_ref=raw_ref,
                                   source=source, references=message_references(raw), raw=raw,
                                   reporter=_reporter(raw), diagnostic=diagnostic_of(raw), now=now)
        return _summarise(rcpt, "reply", outcomes)
    msg = _parse(raw)
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    if auto != "no" or str(msg.get("Precedence", "")).strip().lower() in ("bulk", "junk", "list"):
        # RFC 3834 §5: automatic mail speaks for no person, so it cannot opt anyone out.
        return InboundResult(rcpt, "reply", "ignored")
    send = _send_replied_to(session, msg)
    original_subject = None
    if send is not None:
        original_subject = session.scalar(select(Campaign.subject).where(Campaign.id == send.campaign_id))
    if not asks_to_stop(_subject(msg), body_text(msg), original_subject=original_subject):
        # A person answering our mail is engaged (the sunset flow counts replies, docs/hygiene.md);
        # only a reply that quotes one of our sends names the contact, as anyone can write to us.
        if send is not None:
            record_engagement(session, contact_id=send.contact_id, kind="replied", campaign_id=send.campaign_id,
                              occurred_at=now, source="reply")
        return InboundResult(rcpt, "reply", "ignored")
    contact = _contact_by_from(session, msg, settings)
    campaign_id = send.campaign_id if send is not None else None
    if contact is None and send is not None:
        # A reply from another address of the same person (alias, new domain) to our mail.
        contact = session.get(Contact, send.contact_id)
    if contact is None:
        return InboundResult(rcpt, "reply", "unknown_contact")
    # Wording can be misread, so the event is flagged for a person to review (it still takes
    # effect at once: CAN-SPAM and CASL count a reply as an opt-out).
    return _unsubscribe(session, rcpt, "reply", contact.id, campaign_id, now, msg, review=True)


# --- message reading ---------------------------------------------------------------------

# Real mail nests a few levels (a bounce quoting a forwarded message is about five) and has a
# handful of parts; far beyond that is an attack on the parser, refused for good.
MAX_MIME_DEPTH = 20
MAX_MIME_PARTS = 500


class HostileMessage(ValueError):
    """A message whose MIME structure no real mail has; the listener refuses it permanently."""


def check_structure(raw: bytes) -> None:
    """HostileMessage if the MIME tree nests deeper than MAX_MIME_DEPTH or has over MAX_MIME_PARTS parts."""
    try:
        msg = _parse(raw)
    except RecursionError:  # the standard parser recurses once per nesting level
        raise HostileMessage(f"MIME parts nested more than {MAX_MIME_DEPTH} levels deep") from None
    count = 0
    stack = [(msg, 1)]
    while stack:  # iterative: Message.walk() recurses too
        part, depth = stack.pop()
        count += 1
        if depth > MAX_MIME_DEPTH:
            raise HostileMessage(f"MIME parts nested more than {MAX_MIME_DEPTH} levels deep")
        if count > MAX_MIME_PARTS:
            raise HostileMessage(f"more than {MAX_MIME_PARTS} MIME parts")
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))


def _parse(raw: bytes) -> Message:
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n")
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _subject(msg: Message) -> str:
    value = msg.get("Subject", "")
    try:
        return str(make_header(decode_header(str(value))))
    except Exception:  # hostile encoded words (bad charset names, broken base64): keep the raw text
        return str(value)


def body_text(msg: Message) -> str:
    """The first text/plain part (else HTML without tags), decoded."""
    html = None
    for part in msg.walk():
        if part.is_multipart() or part.get_filename():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = decode_text(payload, part.get_content_charset())
        if ctype == "text/plain":
            return text
        html = html or re.sub(r"<[^<>]{0,2000}>", " ", re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text))
    return html or ""


def _contact_by_from(session: Session, msg: Message, settings: Settings) -> Contact | None:
    _, address = parseaddr(str(msg.get("From", "")))
    if "@" not in address:
        return None
    return session.scalars(select(Contact).where(Contact.email_hash == hash_email(settings.pepper, address))).first()


def _send_replied_to(session: Session, msg: Message) -> Send | None:
    ids = []
    for name in ("In-Reply-To", "References"):
        ids.extend(re.findall(r"<[^<>\s]+>", str(msg.get(name, ""))))
    if not ids:
        return None
    return session.scalars(select(Send).where(Send.message_id.in_(ids[-20:])).limit(1)).first()


# --- does a reply ask to stop? -----------------------------------------------------------

# Where the new text of a reply ends and the quoted original begins (Gmail, Outlook, Apple
# Mail, Thunderbird, Foxmail / QQ in their English, German, French, Spanish, Chinese forms).
_QUOTE_START = re.compile(
    r"^\s*(?:"
    r"on\b.{0,200}\bwrote:?|am\b.{0,200}\bschrieb\b.{0,200}|le\b.{0,200}\ba écrit\s*:?|el\b.{0,200}\bescribió:?"
    r"|在.{0,200}写道[:：]?|.{0,200}於.{0,100}寫道[:：]?"
    r"|-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original|原始邮件|原始郵件)"
    r"|_{5,}|-- ?$"
    r"|(?:from|von|de|发件人|寄件者|发送人)\s*[:：].{0,300}"
    r")\s*$",
    re.I,
)
# Phrases that ask to stop, wherever they stand in the first lines.
_STOP_PHRASES = re.compile(
    r"\bunsubscrib|\bun-subscribe|\bremove (?:me|us|my (?:e-?mail|address|name))\b|\btake (?:me|us) off\b"
    r"|\bstop (?:e-?mailing|mailing|contacting|spamming)\b|\bstop sending (?:me|us|e-?mails|mails|these|this|your)\b"
    r"|\bopt (?:me )?out\b|\bopt-out\b|\bno more (?:e-?mails|mails|newsletters)\b"
    r"|\bdo not (?:e-?mail|contact) (?:me|us)\b|\bdon'?t (?:e-?mail|contact) (?:me|us)\b"
    r"|退订|取消订阅|不要再发|别再发|不要再寄|请勿再发|停止发送|退訂|取消訂閱"
    r"|\babmelden\b|\bmelden sie mich ab\b|\baustragen\b|\babbestellen\b|\bkeine (?:weiteren )?(?:e-?mails|mails)\b"
    r"|\bd[ée]sinscri|\bd[ée]sabonn|\bne plus recevoir\b|\bretirez[- ]moi\b|\bsupprimez[- ]moi\b"
    r"|\bdarse de baja\b|\bdarme de baja\b|\bdar de baja\b|\bcancelar (?:la |mi )?suscripci[óo]n\b"
    r"|\bno (?:me )?(?:envíe|envie|envíen|envien|manden) (?:más|mas)\b|\bquiero la baja\b",
    re.I,
)
# One-word commands, only when they are the whole line or the whole subject.
_STOP_WORDS = frozenset(
    {"stop", "stopp", "remove", "unsubscribe", "td", "退订", "退訂", "abmelden", "baja", "arrêt", "arret",
     "désabonnement", "desabonnement", "désinscription", "desinscription"}
)
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|antw|wg|fw|fwd|tr|rv|r|回复|回覆|答复|转发)\s*[:：]\s*)+", re.I)
_FIRST_LINES = 6


def new_text(body: str) -> list[str]:
    """The first non-empty lines the person wrote themselves, quoted text and signature left out."""
    lines: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if _QUOTE_START.match(stripped):
            break
        if not stripped or stripped.startswith(">"):
            continue
        lines.append(stripped)
        if len(lines) >= _FIRST_LINES:
            break
    return lines


# A negation shortly before the phrase ("I don't want to unsubscribe", "bitte nicht abmelden",
# "je ne veux pas me désinscrire", "no quiero darme de baja") turns the request around.
# Punctuation in between ends the negation: "No, please unsubscribe me", "Not interested, remove me".
_NEGATION = re.compile(r"(?:\b(?:don'?t|do not|doesn'?t|not|never|no need to|nicht|pas|no quiero|no deseo)\b"
                       r"|不要|别|不想)[^.!?。！？,，;；:]{0,30}$", re.I)


def _asks(text: str) -> bool:
    for match in _STOP_PHRASES.finditer(text):
        before = text[: match.start()]
        # Phrases that carry their own negation ("不要再发", "do not email me", "no me envíen más").
        if match.group(0).lower().startswith(("不要", "别再", "请勿", "do not", "don", "no ", "keine")):
            return True
        if not _NEGATION.search(before):
            return True
    return False


def _is_command(text: str) -> bool:
    return text.strip().strip(".!。！,，:;\"'*").lower() in _STOP_WORDS


def asks_to_stop(subject: str, body: str, *, original_subject: str | None = None) -> bool:
    """Whether a reply asks to stop receiving mail, judged from its subject and first lines."""
    stripped_subject = _REPLY_PREFIX.sub("", subject).strip()
    is_reply = stripped_subject != subject.strip()
    subject_hit = _is_command(stripped_subject) or _asks(stripped_subject)
    if subject_hit and is_reply and original_subject and _STOP_PHRASES.search(original_subject):
        subject_hit = False  # "Re: <our own subject>" that happens to contain the words
    if subject_hit:
        return True
    return any(_is_command(line) or _asks(line) for line in new_text(body))
