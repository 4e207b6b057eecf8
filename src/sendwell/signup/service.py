"""Signup forms and double opt-in: define forms, take signups, confirm them, expire the unconfirmed.

A signup is only a request until the person confirms by the link mailed to them; then the
contact is created or updated, subscribed to the chosen topics, and the consent recorded with
its proof (GDPR Art 7(1), CASL s10: form, wording version, IP, user agent, both times).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from sendwell.contacts.fields import normalise_email
from sendwell.contacts.records import ContactError, clean_contact_fields, create_contact, update_contact
from sendwell.db.models import (
    SCOPE_ALL,
    Consent,
    ConsentKind,
    ConsentSource,
    Contact,
    Event,
    SignupForm,
    Signup,
    Subscription,
    Suppression,
    SuppressionReason,
    Topic,
)
from sendwell.i18n import SUPPORTED, translations
from sendwell.optout.followup_mails import mask_email
from sendwell.outbox.store import enqueue
from sendwell.suppression.service import hash_email, lift

MAIL_KIND = "signup_confirm"
FIELDS = ("first_name", "last_name", "company", "country", "industry", "job_title")
CUSTOM_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
MAX_VALUE = 200  # characters kept of any field a visitor types
IP_LIMIT = 20  # signups taken from one IP address per hour; more are answered but not stored
IP_WINDOW = timedelta(hours=1)
ADDRESS_WINDOW = timedelta(days=1)  # at most one confirmation mail per address per day
# Suppressions a signup cannot lift: a dead address, a complaint (rule 28), an erasure or an
# operator's decision. An unsubscribe or a sunset is lifted by the person's confirmed signup.
BLOCKING = (SuppressionReason.HARD_BOUNCE.value, SuppressionReason.COMPLAINT.value,
            SuppressionReason.SOFT_BOUNCE_STREAK.value, SuppressionReason.MANUAL.value,
            SuppressionReason.ERASED.value)
LIFTABLE = (SuppressionReason.UNSUBSCRIBE.value, SuppressionReason.SUNSET.value)
DEFAULT_CONSENT = ("Yes, I would like to receive email about the topics I chose. "
                   "I can unsubscribe at any time with the link in every mail.")


class SignupError(ValueError):
    """A form definition or a submitted value is invalid: a message template and its values."""

    def __init__(self, template: str, **params: Any) -> None:
        super().__init__(template % params if params else template)
        self.template = template
        self.params = params


class FormNotFound(LookupError):
    """No signup form has this id."""


@dataclass(frozen=True)
class SubmitResult:
    """What happened to a submission; the visitor sees the same page whatever the outcome."""

    outcome: str  # queued | honeypot | rate_limited | suppressed | recent
    signup_id: int | None = None


@dataclass(frozen=True)
class ConfirmResult:
    status: str  # confirmed | already_confirmed | expired | suppressed
    contact_id: int | None = None
    topics: list[str] = field(default_factory=list)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def default_consent_text(language: str) -> str:
    """The consent wording a new form shows unless one is given, in the form's language."""
    return translations(language, "pages").gettext(DEFAULT_CONSENT)


def _clean_definition(session: Session, *, name: str | None, fields: list[str] | None, topics: list[str] | None,
                      language: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name is not None:
        if not name.strip():
            raise SignupError("Give the form a name.")
        out["name"] = name.strip()[:200]
    if fields is not None:
        chosen: list[str] = []
        for item in fields:
            key = item.strip().lower()
            if key == "email" or not key:
                continue  # the address is always asked
            if key not in FIELDS and not CUSTOM_FIELD.match(key):
                raise SignupError("%(field)s is not a field name (letters, digits and _)", field=item)
            if key not in chosen:
                chosen.append(key)
        out["fields"] = chosen
    if topics is not None:
        slugs = list(dict.fromkeys(t.strip() for t in topics if t.strip()))
        known = set(session.scalars(select(Topic.slug).where(Topic.slug.in_(slugs)))) if slugs else set()
        missing = [s for s in slugs if s not in known]
        if missing:
            raise SignupError("there is no topic %(topic)s", topic=missing[0])
        out["topics"] = slugs
    if language is not None:
        if language not in SUPPORTED:
            raise SignupError("%(language)s is not a form language (use one of %(languages)s)",
                              language=language, languages=", ".join(SUPPORTED))
        out["language"] = language
    return out


def create_form(
    session: Session, *, name: str, fields: list[str] | None = None, topics: list[str] | None = None,
    language: str = "en", consent_text: str = "", thanks_text: str = "",
) -> SignupForm:
    """A new signup form; its consent text is version 1 (the default wording when none is given)."""
    values = _clean_definition(session, name=name, fields=fields or [], topics=topics or [], language=language)
    text = consent_text.strip() or default_consent_text(values["language"])
    form = SignupForm(**values, consent_texts=[text], thanks_text=thanks_text.strip(), expired=0)
    session.add(form)
    session.flush()
    return form


def update_form(
    session: Session, *, form_id: int, name: str | None = None, fields: list[str] | None = None,
    topics: list[str] | None = None, language: str | None = None, consent_text: str | None = None,
    thanks_text: str | None = None,
) -> SignupForm:
    """Change a form; a changed consent text becomes a new version (the old ones stay for the proof)."""
    form = get_form(session, form_id=form_id)
    for key, value in _clean_definition(session, name=name, fields=fields, topics=topics,
                                        language=language).items():
        setattr(form, key, value)
    if consent_text is not None and consent_text.strip() and consent_text.strip() != current_consent(form):
        form.consent_texts = [*form.consent_texts, consent_text.strip()]  # a new list: JSON columns track assignment
    if thanks_text is not None:
        form.thanks_text = thanks_text.strip()
    session.flush()
    return form


def get_form(session: Session, *, form_id: int) -> SignupForm:
    """One form; FormNotFound if there is none with this id."""
    form = session.get(SignupForm, form_id)
    if form is None:
        raise FormNotFound(form_id)
    return form


def list_forms(session: Session) -> list[SignupForm]:
    return list(session.scalars(select(SignupForm).order_by(SignupForm.id)))


def current_consent(form: SignupForm) -> str:
    """The consent text a visitor sees now."""
    return form.consent_texts[-1]


def consent_version(form: SignupForm) -> int:
    return len(form.consent_texts)


def form_counts(session: Session, *, now: datetime | None = None) -> dict[int, dict[str, int]]:
    """Per form id: pending (waiting for the link), confirmed, expired (deleted unconfirmed)."""
    now = _now(now)
    counts = {f_id: {"pending": 0, "confirmed": 0, "expired": expired}
              for f_id, expired in session.execute(select(SignupForm.id, SignupForm.expired))}
    rows = session.execute(
        select(Signup.form_id, Signup.confirmed_at.is_not(None), func.count()).group_by(
            Signup.form_id, Signup.confirmed_at.is_not(None)))
    for form_id, confirmed, n in rows:
        counts.setdefault(form_id, {"pending": 0, "confirmed": 0, "expired": 0})
        counts[form_id]["confirmed" if confirmed else "pending"] += n
    return counts


def describe(form: SignupForm, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A form as plain data (CLI --json, API)."""
    out: dict[str, Any] = {
        "id": form.id, "name": form.name, "fields": ["email", *form.fields], "topics": form.topics,
        "language": form.language, "consent_text": current_consent(form), "consent_version": consent_version(form),
        "thanks_text": form.thanks_text,
    }
    if counts is not None:
        out["counts"] = counts
    return out


def _blocking_suppression(session: Session, email_hash: str) -> bool:
    return session.scalar(select(Suppression.id).where(
        Suppression.email_hash == email_hash, Suppression.scope == SCOPE_ALL,
        Suppression.reason.in_(BLOCKING)).limit(1)) is not None


def clean_submission(session: Session, form: SignupForm, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The normalised address and the form's fields from what a visitor sent; SignupError if invalid."""
    try:
        address = normalise_email(str(values.get("email", "")).strip())
    except ValueError:
        raise SignupError("Please enter a valid email address.") from None
    kept: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for key in form.fields:
        value = str(values.get(key) or "").strip()[:MAX_VALUE]
        if not value:
            continue
        if key in FIELDS:
            kept[key] = value
        else:
            custom[key] = value
    try:
        # Validated now (country, industry), so the confirmation cannot fail on them later.
        cleaned = clean_contact_fields(kept, session=session)
    except ContactError as exc:
        raise SignupError(exc.template or exc.message, **exc.params) from None
    if custom:
        cleaned["custom"] = custom
    return address, cleaned


def submit_signup(
    session: Session, *, form_id: int, values: dict[str, Any], topics: list[str] | None, pepper: bytes,
    ip: str = "", user_agent: str = "", honeypot: str = "", expire_days: int = 7, now: datetime | None = None,
) -> SubmitResult:
    """Take a signup and queue its confirmation mail, unless abuse rules say otherwise.

    FormNotFound for an unknown form, SignupError for an invalid address or field; every other
    outcome is answered alike by the adapters, so a visitor cannot learn whether an address is
    stored or suppressed.
    """
    now = _now(now)
    form = get_form(session, form_id=form_id)
    address, cleaned = clean_submission(session, form, values)
    if honeypot.strip():
        return SubmitResult("honeypot")  # a bot filled the hidden field: nothing stored, nothing sent
    if ip and session.scalar(select(func.count()).select_from(Signup).where(
            Signup.ip == ip[:64], Signup.created_at > now - IP_WINDOW)) >= IP_LIMIT:
        return SubmitResult("rate_limited")
    email_hash = hash_email(pepper, address)
    if _blocking_suppression(session, email_hash):
        return SubmitResult("suppressed")
    if session.scalar(select(Signup.id).where(Signup.email_hash == email_hash,
                                              Signup.created_at > now - ADDRESS_WINDOW).limit(1)) is not None:
        return SubmitResult("recent")  # one confirmation mail a day: a form cannot be used to mail-bomb
    offered = set(form.topics)
    chosen = [t for t in (form.topics if topics is None else topics) if t in offered]
    signup = Signup(form_id=form.id, email=address, email_hash=email_hash, fields=cleaned, topics=chosen,
                    language=form.language, consent_version=consent_version(form), ip=ip[:64],
                    user_agent=user_agent[:500], created_at=now, expires_at=now + timedelta(days=expire_days))
    session.add(signup)
    session.flush()
    enqueue(session, kind=MAIL_KIND, payload={"signup_id": signup.id}, dedupe_key=f"{MAIL_KIND}:{signup.id}", now=now)
    return SubmitResult("queued", signup.id)


def get_signup(session: Session, *, signup_id: int) -> Signup | None:
    return session.get(Signup, signup_id)


def is_mailable(session: Session, *, signup: Signup, now: datetime | None = None) -> bool:
    """Whether the confirmation mail of this signup should still go out (checked again at sending)."""
    return (signup.confirmed_at is None and signup.expires_at > _now(now)
            and not _blocking_suppression(session, signup.email_hash))


def _subscribe(session: Session, contact_id: int, slugs: list[str], now: datetime) -> list[str]:
    topics = {t.slug: t.id for t in session.scalars(select(Topic).where(Topic.slug.in_(slugs)))} if slugs else {}
    existing = {s.topic_id: s for s in session.scalars(select(Subscription).where(
        Subscription.contact_id == contact_id, Subscription.topic_id.in_(topics.values())))}
    for slug, topic_id in topics.items():
        # The person's own confirmed signup is a new consent, also for a topic they once left.
        sub = existing.get(topic_id)
        if sub is None:
            session.add(Subscription(contact_id=contact_id, topic_id=topic_id, status="subscribed", created_at=now,
                                     updated_at=now))
        elif sub.status != "subscribed":
            sub.status, sub.updated_at = "subscribed", now
    return sorted(topics)


def confirm_signup(
    session: Session, *, signup_id: int, pepper: bytes, ip: str = "", user_agent: str = "",
    now: datetime | None = None,
) -> ConfirmResult:
    """The person confirmed by the mailed link: store the contact, subscribe, record the consent and its proof."""
    now = _now(now)
    signup = session.get(Signup, signup_id)
    if signup is None:
        return ConfirmResult("expired")
    if signup.confirmed_at is not None:
        return ConfirmResult("already_confirmed", signup.contact_id, list(signup.topics))
    if signup.expires_at <= now:
        return ConfirmResult("expired")
    if _blocking_suppression(session, signup.email_hash):
        return ConfirmResult("suppressed")
    form = session.get(SignupForm, signup.form_id)
    assert form is not None  # the signup row goes with its form (ON DELETE CASCADE)
    fields = {**signup.fields, "language": signup.language}
    contact = session.scalar(select(Contact).where(Contact.email_hash == signup.email_hash))
    if contact is None:
        contact = create_contact(session, pepper=pepper, email=signup.email, fields=fields,
                                 source=f"signup form {form.id}", now=now)
    else:
        custom = fields.pop("custom", None)
        update_contact(session, contact_id=contact.id, fields=fields)
        if custom:
            contact.custom = {**(contact.custom or {}), **custom}
    lifted = sorted({s.reason for s in session.scalars(select(Suppression).where(
        Suppression.email_hash == signup.email_hash, Suppression.scope == SCOPE_ALL,
        Suppression.reason.in_(LIFTABLE)))})
    lift(session, email_hash=signup.email_hash, reasons=LIFTABLE)
    for slug in signup.topics:
        lift(session, email_hash=signup.email_hash, reasons=LIFTABLE, scope=slug)
    topics = _subscribe(session, contact.id, list(signup.topics), now)
    wording = form.consent_texts[signup.consent_version - 1]
    session.add(Consent(
        contact_id=contact.id, kind=ConsentKind.EXPRESS.value, source=f"signup form {form.id}",
        source_kind=ConsentSource.WEB_FORM.value, obtained_at=now, ip=ip[:64], wording=wording,
        wording_hash=hashlib.sha256(wording.encode()).hexdigest()))
    # The proof the consents table has no columns for: both steps, each with its IP and agent.
    session.add(Event(kind="signup_confirmed", contact_id=contact.id, method="double_opt_in", ip=ip[:64],
                      user_agent=user_agent[:500], occurred_at=now, data={
                          "form_id": form.id, "signup_id": signup.id, "consent_version": signup.consent_version,
                          "topics": topics, "signed_up_at": signup.created_at.isoformat(),
                          "signup_ip": signup.ip, "signup_user_agent": signup.user_agent,
                          "confirmed_at": now.isoformat(), "lifted": lifted}))
    if contact.last_engaged_at is None or contact.last_engaged_at < now:
        contact.last_engaged_at = now
    signup.confirmed_at, signup.contact_id = now, contact.id
    # The contact holds the address now; the kept signup row holds only what a page shows of it,
    # so erasing the contact (GDPR Art 17) leaves no readable copy here.
    signup.email = mask_email(signup.email)
    session.flush()
    return ConfirmResult("confirmed", contact.id, topics)


def expire_signups(session: Session, *, now: datetime | None = None) -> int:
    """Delete the unconfirmed signups past their expiry (the address goes with them); counted per form."""
    now = _now(now)
    per_form = dict(session.execute(select(Signup.form_id, func.count()).where(
        Signup.confirmed_at.is_(None), Signup.expires_at <= now).group_by(Signup.form_id)).all())
    for form_id, n in per_form.items():
        session.execute(update(SignupForm).where(SignupForm.id == form_id)
                        .values(expired=SignupForm.expired + n))
    session.execute(delete(Signup).where(Signup.confirmed_at.is_(None), Signup.expires_at <= now))
    session.flush()
    return sum(per_form.values())
