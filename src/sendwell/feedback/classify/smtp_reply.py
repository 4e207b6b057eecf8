"""An SMTP reply (code and text) to our own delivery attempt, judged like a bounce."""

from __future__ import annotations

from sendwell.feedback.classify.result import OTHER, Classification, classified, dedupe
from sendwell.feedback.classify.status import best_status
from sendwell.feedback.classify.verdict import Evidence, judge


def classify_smtp_reply(recipient: str, code: int, message: str) -> Classification:
    """Judge a synchronous SMTP reply to our own delivery attempt (RCPT or DATA) like a bounce.

    A 4xx means our sender will retry, so it is a delay and never counts towards a streak.
    """
    recipients = dedupe([recipient.strip().lower()])
    if not 400 <= code < 600:
        return Classification(kind=OTHER, recipients=recipients, reason="accepted", reply_code=str(code))
    status = best_status(message)
    text = f"{code} {message}".lower()
    # A 4xx in our own session is retried by our sender: not final, so never hard.
    category, reason = judge(Evidence(status, str(code), text, final=code >= 500))
    return classified(category, recipients=recipients, status=status, reason=reason, reply_code=str(code),
                      is_delay=code < 500)
