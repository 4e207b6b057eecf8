"""Demo step: bounces, a delay, a sender-fault rejection and an ARF complaint, over SMTP to the inbound listener."""

from __future__ import annotations

import email
import email.policy
import smtplib
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from sendwell.db.models import Alert, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.feedback.listener import FeedbackListener
from sendwell.runtime import Runtime

# (label, status, action, diagnostic) — what receiving servers would say about four recipients.
_REPORTS = [
    ("hard", "5.1.1", "failed", "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"),
    ("soft", "5.2.2", "failed", "smtp; 552 5.2.2 Mailbox full, over quota"),
    ("delay", "4.4.1", "delayed", "smtp; 451 4.4.1 no answer from host, will retry"),
    ("sender_fault", "5.7.515", "failed",
     "smtp; 550 5.7.515 Access denied, sending domain does not meet the required authentication level"),
]


def _dsn(rcpt: str, to: str, status: str, action: str, diag: str, message_id: str) -> bytes:
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.{rcpt.rpartition('@')[2]}>\r\nTo: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: {diag.format(rcpt=rcpt)}\r\n\r\n"
        f"--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: {rcpt}\r\nMessage-ID: {message_id}\r\n\r\n--dsn--\r\n"
    ).encode()


def _arf(rcpt: str, to: str, message_id: str) -> bytes:
    return (
        f"From: Feedback Loop <fbl@{rcpt.rpartition('@')[2]}>\r\nTo: {to}\r\nSubject: Abuse report\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n\r\n'
        "--arf\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
        "--arf\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n"
        f"User-Agent: demo-fbl/1.0\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n"
        f"--arf\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: {rcpt}\r\nMessage-ID: {message_id}\r\n\r\n--arf--\r\n"
    ).encode()


def feed_feedback(runtime: Runtime, messages: list[Any], skip: list[str], say: Any = print) -> dict[str, Any]:
    """Send four DSNs and one complaint about received campaign mails to the listener; report the outcome."""
    settings = runtime.settings
    domain = settings.inbound_domain_list[0]
    skip_set = {a.lower() for a in skip}
    # Recipients spread over the campaign, none of those who already unsubscribed.
    wanted = len(_REPORTS) + 1
    candidates = [m for m in messages if m.rcpt_tos[0].lower() not in skip_set]
    if len(candidates) < wanted:
        raise RuntimeError(f"the demo needs at least {wanted} delivered mails to bounce")
    step = len(candidates) // wanted
    picked = candidates[step // 2 :: step][:wanted]
    mails: list[tuple[str, list[str], bytes]] = []
    for (label, status, action, diag), received in zip(_REPORTS, picked, strict=False):
        rcpt = received.rcpt_tos[0]
        message_id = str(email.message_from_bytes(received.data, policy=email.policy.compat32)["Message-ID"])
        # The DSN goes back to the VERP envelope sender the mail carried (its Return-Path).
        mails.append((label, [received.mail_from], _dsn(rcpt, received.mail_from, status, action, diag, message_id)))
    complained = picked[len(_REPORTS)]
    complaint_id = str(email.message_from_bytes(complained.data, policy=email.policy.compat32)["Message-ID"])
    # Feedback loops report to a fixed address; the original Message-ID names the send.
    mails.append(("complaint", [f"bounce@{domain}"], _arf(complained.rcpt_tos[0], f"bounce@{domain}", complaint_id)))

    with FeedbackListener(runtime.factory, settings, host="127.0.0.1", port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=30) as client:
            for _, rcpts, data in mails:
                client.sendmail("", rcpts, data)
        actions = Counter(r.action for r in listener.handler.results)
        url = listener.url
    with transaction(runtime.factory) as session:
        suppressed = dict(session.execute(
            select(Suppression.reason, func.count()).where(Suppression.reason != "unsubscribe")
            .group_by(Suppression.reason)).all())
        alerts = session.scalar(select(func.count()).select_from(Alert).where(Alert.kind == "sender_fault"))
    who = {label: rcpts for label, rcpts, _ in mails}
    say(f"   Inbound listener on {url} received {len(mails)} reports over SMTP: "
        + ", ".join(f"{k} {v}" for k, v in sorted(actions.items())))
    say(f"   → suppressed {suppressed or 'nobody'}; {alerts} sender alert(s); the soft bounce and the delay "
        "suppressed nobody")
    return {
        "reports": len(mails),
        "actions": dict(sorted(actions.items())),
        "suppressed": suppressed,
        "alerts": alerts,
        "recipients": {label: (picked[i].rcpt_tos[0] if i < len(_REPORTS) else complained.rcpt_tos[0])
                       for i, label in enumerate(who)},
    }


def format_feedback(summary: dict[str, Any]) -> list[str]:
    """Summary lines for the feedback step."""
    feedback = summary.get("feedback")
    if not feedback:
        return []
    return [
        f"Feedback: {feedback['reports']} reports over SMTP → "
        + ", ".join(f"{k} {v}" for k, v in feedback["actions"].items()),
        "    suppressed: " + (", ".join(f"{k} {v}" for k, v in feedback["suppressed"].items()) or "none")
        + f"; sender-fault alerts: {feedback['alerts']}",
    ]
