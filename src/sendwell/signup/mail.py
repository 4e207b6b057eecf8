"""The signup confirmation mail, sent from the outbox like the opt-out flow's mails."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from markupsafe import escape
from sqlalchemy import select

from sendwell.config import Settings
from sendwell.db.models import Event, Signup, SignupForm, Topic
from sendwell.db.session import transaction
from sendwell.mail.transport import make_transport
from sendwell.optout.followup_mails import hand_off
from sendwell.optout.mail import build, company_lines, gettext_for
from sendwell.outbox.store import Message, finish, settle
from sendwell.outbox.worker import Dispatcher
from sendwell.signup.service import MAIL_KIND, is_mailable
from sendwell.signup.tokens import make_signup_token


def confirmation_url(settings: Settings, signup_id: int) -> str:
    """The signed link of one signup's confirmation mail."""
    return f"{settings.base_url}/f/c/{make_signup_token(settings.secret_keys, signup_id)}"


def compose(settings: Settings, *, language: str, url: str, topics: list[str], days: int) -> tuple[str, str, str]:
    """Subject, text and HTML of the confirmation mail: what was asked, the link, and what happens otherwise."""
    _ = gettext_for(language)
    company = settings.company_name
    subject = _("Please confirm your subscription to %(company)s", company=company)
    first = _("Thank you for signing up for mail from %(company)s. Please confirm your address with the link "
              "below within %(days)s days.", company=company, days=days)
    about = _("You chose: %(topics)s", topics=", ".join(topics)) if topics else ""
    last = _("If you did not sign up, ignore this mail: without your confirmation you get nothing more from us.")
    button = _("Confirm my subscription")
    footer = company_lines(settings)
    paragraphs = [p for p in (first, about) if p]
    text = "\n\n".join([*paragraphs, f"{button}\n{url}", last]) + "\n\n-- \n" + "\n".join(footer) + "\n"
    html = (
        '<!DOCTYPE html><html><body style="font-family:sans-serif;line-height:1.5;color:#1f2328">'
        + "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        + f'<p><a href="{escape(url)}" style="display:inline-block;padding:10px 18px;background:#0969da;'
          f'color:#fff;text-decoration:none;border-radius:6px;font-weight:bold">{escape(button)}</a></p>'
        + f"<p>{escape(last)}</p>"
        + '<p style="color:#57606a;font-size:12px;border-top:1px solid #ddd;padding-top:8px">'
        + "<br>".join(str(escape(x)) for x in footer) + "</p></body></html>"
    )
    return subject, text, html


def _send_one(runtime: Any, message: Message, transport: Any, now: datetime) -> tuple[str, str | None]:
    settings = runtime.settings
    with transaction(runtime.factory) as session:
        signup = session.get(Signup, int(message.payload.get("signup_id") or 0))
        if signup is None:
            return "skipped", "the signup expired or was deleted"
        if not is_mailable(session, signup=signup, now=now):
            return "skipped", "confirmed, expired or suppressed before the mail went out"
        form = session.get(SignupForm, signup.form_id)
        names = dict(session.execute(select(Topic.slug, Topic.name).where(Topic.slug.in_(signup.topics))).all())
        topics = [names.get(slug, slug) for slug in signup.topics]
        address, language, signup_id, created = signup.email, signup.language, signup.id, signup.created_at
        days = max(1, round((signup.expires_at - created).total_seconds() / 86400))
        first = " ".join(x for x in (signup.fields.get("first_name", ""), signup.fields.get("last_name", "")) if x)
        assert form is not None
    subject, text, html = compose(settings, language=language, url=confirmation_url(settings, signup_id),
                                  topics=topics, days=days)
    data, message_id = build(settings, to_address=address, to_name=first, subject=subject, text=text, html=html,
                             signer=runtime.signer)
    refused = hand_off(transport, settings, address, data)
    if refused:
        return refused
    with transaction(runtime.factory) as session:
        settle(session, [message.id], status="done", sent_at=now)
        session.add(Event(kind="signup_mail_sent", method="", occurred_at=datetime.now(timezone.utc),
                          data={"signup_id": signup_id, "message_id": message_id}))
    return "done_recorded", None


@contextmanager
def _smtp(runtime: Any, transport: Any) -> Iterator[Any]:
    """The given transport, or one opened for this batch and closed after it."""
    if transport is not None:
        yield transport
        return
    s = runtime.settings
    opened = make_transport(s.smtp_url, s.capture_dir, timeout=s.smtp_timeout)
    try:
        yield opened
    finally:
        opened.close()


def send_signup_mails(runtime: Any, messages: list[Message], now: datetime, *, transport: Any = None) -> dict[str, int]:
    """Send each confirmation mail row over one SMTP session; counts by outcome."""
    outcomes: list[str] = []
    with _smtp(runtime, transport) as smtp:
        for message in messages:
            status, error = _send_one(runtime, message, smtp, now)
            if status == "done_recorded":
                status = "done"  # settled with its event in _send_one
            else:
                finish(runtime.factory, message.id, status=status, error=error)
            outcomes.append(status)
    return dict(Counter(outcomes))


def register_signup_mail_handler(dispatcher: Dispatcher, runtime: Any, *, transport: Any = None) -> None:
    """Let the dispatcher send the signup confirmation mails with this runtime (and transport, if given)."""
    dispatcher.register(MAIL_KIND, lambda messages, now: send_signup_mails(runtime, messages, now, transport=transport))
