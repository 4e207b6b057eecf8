"""Builders for feedback tests: campaigns with sent sends, and DSN / ARF / reply messages."""

from __future__ import annotations

from datetime import datetime, timezone
from email.header import Header

from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db.models import Campaign, Contact, Send, SendState
from sendwell.mail.mime import make_message_id
from sendwell.delivery.verp import make_return_path

DOMAIN = "bright-lighting.example"


def make_campaign(session: Session, name: str = "Spring LED") -> Campaign:
    campaign = Campaign(name=name, subject="LED panels", html="<p>hi</p>", status="sending")
    session.add(campaign)
    session.flush()
    return campaign


def make_sent(session: Session, contact: Contact, campaign: Campaign | None = None,
              state: str = SendState.SENT.value) -> Send:
    """A send that went out, with its Message-ID, as delivery would leave it."""
    campaign = campaign or make_campaign(session)
    send = Send(campaign_id=campaign.id, contact_id=contact.id, state=state, attempts=1,
                sent_at=datetime.now(timezone.utc))
    session.add(send)
    session.flush()
    send.message_id = make_message_id(send.id, DOMAIN)
    session.flush()
    return send


def verp(settings: Settings, send: Send) -> str:
    """The VERP envelope sender of a send: where its bounces come back to."""
    return make_return_path(settings.secret_keys, send.id, DOMAIN)


def verp_detail(address: str) -> str:
    return address.split("@", 1)[0].removeprefix("bounce+")


def dsn(*, rcpt: str, status: str, to: str = f"bounce@{DOMAIN}", action: str = "failed",
        diag: str = "", message_id: str = "<orig@sender.example>", reporter: str = "mx.example.net") -> bytes:
    """An RFC 3464 delivery status notification for one recipient."""
    diag = diag or f"smtp; 550 {status} failure"
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@{reporter}>\n"
        f"To: {to}\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nThis is the mail system. Your message could not be delivered.\n\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; {reporter}\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: {diag}\n\n"
        "--B\nContent-Type: text/rfc822-headers\n\n"
        f"From: sales@{DOMAIN}\nTo: {rcpt}\nSubject: LED panels\nMessage-ID: {message_id}\n\n"
        "--B--\n"
    ).encode()


def arf(*, rcpt: str, feedback_type: str = "abuse", to: str = f"bounce@{DOMAIN}",
        message_id: str = "<orig@sender.example>") -> bytes:
    """An RFC 5965 abuse report as a mailbox provider's feedback loop sends it."""
    return (
        "From: Feedback Loop <fbl@isp.example>\n"
        f"To: {to}\n"
        "Subject: Abuse report\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\n\n'
        "--F\nContent-Type: text/plain\n\nThis is an email abuse report.\n\n"
        "--F\nContent-Type: message/feedback-report\n\n"
        f"Feedback-Type: {feedback_type}\nUser-Agent: isp-fbl/1.0\nVersion: 1\n"
        f"Original-Rcpt-To: <{rcpt}>\n\n"
        "--F\nContent-Type: text/rfc822-headers\n\n"
        f"From: sales@{DOMAIN}\nTo: {rcpt}\nSubject: LED panels\nMessage-ID: {message_id}\n\n"
        "--F--\n"
    ).encode()


def reply(*, sender: str, body: str, subject: str = "Re: LED panels", in_reply_to: str = "",
          to: str = f"sales@{DOMAIN}", extra: str = "", charset: str = "utf-8") -> bytes:
    """A person's reply to a campaign mail."""
    encoded = Header(subject, "utf-8").encode() if not subject.isascii() else subject
    headers = f"From: {sender}\nTo: {to}\nSubject: {encoded}\nMIME-Version: 1.0\n"
    if in_reply_to:
        headers += f"In-Reply-To: {in_reply_to}\n"
    headers += extra
    headers += f'Content-Type: text/plain; charset="{charset}"\nContent-Transfer-Encoding: 8bit\n\n'
    return headers.encode() + body.encode(charset)
