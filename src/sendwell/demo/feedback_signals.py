"""Demo step: a forged bounce to the bare bounce address is refused and kept for review; the block alert and its fix."""

from __future__ import annotations

import smtplib
from typing import Any

from sqlalchemy import select

from sendwell.db.models import Alert, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.feedback.listener import FeedbackListener
from sendwell.feedback.review import list_reviews
from sendwell.runtime import Runtime
from sendwell.suppression.service import hash_email


def _forged_dsn(victim: str, to: str) -> bytes:
    # What an attacker can write: a well-formed DSN naming a real buyer, with no VERP address
    # and no Message-ID of ours (they never received the mail).
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.attacker.example>\r\nTo: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.attacker.example\r\n\r\n"
        f"Final-Recipient: rfc822; {victim}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{victim}>: User unknown\r\n\r\n"
        f"--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: {victim}\r\nMessage-ID: <forged@attacker.example>\r\n"
        "\r\n--dsn--\r\n"
    ).encode()


def show_feedback_signals(runtime: Runtime, messages: list[Any], skip: list[str], say: Any = print) -> dict[str, Any]:
    """Mail one forged DSN to the bare bounce address, show that it changed nobody, then the sender alert."""
    settings = runtime.settings
    bare = f"bounce@{settings.inbound_domain_list[0]}"
    skip_set = {a.lower() for a in skip}
    with transaction(runtime.factory) as session:
        suppressed = set(session.scalars(select(Suppression.email_hash)))
    # A buyer who received the campaign and is still subscribed: the forgery's target.
    victim = next(m.rcpt_tos[0] for m in reversed(messages) if m.rcpt_tos[0].lower() not in skip_set
                  and hash_email(settings.pepper, m.rcpt_tos[0]) not in suppressed)
    with FeedbackListener(runtime.factory, settings, host="127.0.0.1", port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=30) as client:
            client.sendmail("", [bare], _forged_dsn(victim, bare))
        [result] = listener.handler.results
    with transaction(runtime.factory) as session:
        still_subscribed = session.scalar(select(Suppression.id).where(
            Suppression.email_hash == hash_email(settings.pepper, victim))) is None
        review = list_reviews(session, limit=1)[0]
        alerts = [(a.data.get("provider"), a.data.get("count"), a.message)
                  for a in session.scalars(select(Alert).where(Alert.kind == "sender_fault").order_by(Alert.id))]
    say(f"   A forged bounce for {victim} mailed to {bare} (no VERP token, no Message-ID of ours): "
        f"refused ({result.action}), {'nobody suppressed' if still_subscribed else 'SUPPRESSED'}; stored for "
        f"review as #{review.id} ({review.why}) at /admin/review")
    for provider, count, message in alerts:
        say(f"   Sender alert for {provider} ({count} report(s)): {message}")
    return {"forged": {"recipient": victim, "action": result.action, "suppressed": not still_subscribed,
                       "review_id": review.id, "why": review.why},
            "sender_alerts": [{"provider": p, "count": c, "message": m} for p, c, m in alerts]}
