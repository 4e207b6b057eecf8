"""Single contacts, consents, topics and subscriptions: the use cases behind the REST API."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.contacts.fields import normalise_email, parse_language, parse_timezone
from sendwell.contacts.lawful_basis import LIFETIME as CONSENT_LIFETIME
from sendwell.contacts.problems import FieldProblem, address_problem
from sendwell.contacts.regions import parse_country, region_for
from sendwell.contacts.vocabulary import INDUSTRY, STAGE, load_vocabulary
from sendwell.db.models import SCOPE_ALL, Consent, ConsentKind, Contact, Subscription, Suppression, Topic
from sendwell.suppression.service import hash_email


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- single contacts (REST API, CLI)
# The REST API's per-contact use cases; the CSV/XLSX import (contacts.importer) stays the bulk path.

EDITABLE_FIELDS = ("first_name", "last_name", "company", "job_title", "industry", "stage",
                   "country", "language", "timezone", "tags", "custom")


class ContactError(ValueError):
    """A contact field is invalid; `field` names it (`items[3].email` in a bulk upsert)."""

    def __init__(self, field: str, message: str, template: str = "", params: dict[str, Any] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        # The message as a template and its values, for the admin to translate (`message` is the English).
        self.template = template
        self.params = params or {}


class ContactExists(ContactError):
    """Creating a contact whose address is already stored."""


class OptedOut(ContactError):
    """The change would undo the person's own opt-out."""


class BulkContactError(ValueError):
    """At least one item of a bulk upsert is invalid; nothing was written."""

    def __init__(self, errors: list[ContactError]) -> None:
        super().__init__(f"{len(errors)} invalid items; first: {errors[0]}")
        self.errors = errors


def clean_contact_fields(values: dict[str, Any], *, prefix: str = "", session: Session | None = None) -> dict[str, Any]:
    """Validate the given fields (only those present) as the import does; ContactError names the field.

    Industry and stage resolve through the same controlled vocabularies as the import
    (built-ins plus the operator's own values when a session is given).
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in EDITABLE_FIELDS:
            raise ContactError(name, "not a contact field that can be set")
        if key in (STAGE, INDUSTRY):
            raw = str(value).strip()
            vocab = load_vocabulary(session, key)
            resolved = vocab.resolve(raw) if raw else ""
            if resolved is None:
                raise ContactError(name, f"unknown {key} {raw!r} (known: {vocab.describe()})")
            out[key] = resolved
        elif key in ("country", "language", "timezone"):
            parse = {"country": parse_country, "language": parse_language, "timezone": parse_timezone}[key]
            try:
                out[key] = parse(str(value)) if str(value).strip() else ("en" if key == "language" else "")
            except FieldProblem as exc:
                raise ContactError(name, str(exc), exc.template, exc.params) from None
            except ValueError as exc:
                raise ContactError(name, str(exc)) from None
        elif key == "tags":
            out[key] = sorted({str(t).strip() for t in value if str(t).strip()})
        elif key == "custom":
            out[key] = {str(k): v for k, v in dict(value).items()}
        else:
            out[key] = str(value).strip()
    return out


def _assign(contact: Contact, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        setattr(contact, key, value)
        if key == "country":
            contact.region = region_for(value) if value else "other"


def _normalised(email: str, field: str = "email") -> str:
    try:
        return normalise_email(email)
    except ValueError as exc:
        problem = address_problem(repr(email), str(exc))
        raise ContactError(field, str(problem), problem.template, problem.params) from None


def find_contact(session: Session, *, pepper: bytes, email: str) -> Contact | None:
    """The contact with this address, matched case-insensitively through its peppered hash, or None."""
    try:
        address = normalise_email(email)
    except ValueError:
        return None
    return session.scalar(
        select(Contact).where(Contact.email_hash == hash_email(pepper, address)).order_by(Contact.id).limit(1)
    )


def create_contact(
    session: Session, *, pepper: bytes, email: str, fields: dict[str, Any], source: str = "api",
    now: datetime | None = None,
) -> Contact:
    """Store a new contact; ContactExists if the address is already stored (in any letter case).

    The address is kept as given, for sending; it is matched through the peppered hash of
    its lower-cased form, which is also the suppression key.
    """
    address = _normalised(email)
    existing = session.scalar(select(Contact.id).where(Contact.email_hash == hash_email(pepper, address)))
    if existing is not None:
        raise ContactExists("email", f"a contact with this address already exists (id {existing})",
                            "a contact with this address already exists (id %(id)s)", {"id": existing})
    cleaned = clean_contact_fields(fields, session=session)
    contact = Contact(email=address, email_hash=hash_email(pepper, address), source=source[:200],
                      created_at=now or datetime.now(timezone.utc), tags=[], custom={})
    _assign(contact, cleaned)
    session.add(contact)
    session.flush()
    return contact


def update_contact(session: Session, *, contact_id: int, fields: dict[str, Any]) -> Contact | None:
    """Change the given fields of a contact (the address is its identity and stays); None if missing."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    _assign(contact, clean_contact_fields(fields, session=session))
    session.flush()
    return contact


def upsert_contact(
    session: Session, *, pepper: bytes, email: str, fields: dict[str, Any], source: str = "api",
) -> tuple[Contact, bool]:
    """Create the contact or change the given fields of the stored one; returns (contact, created).

    The stored contact is found whatever the letter case of the address; its address stays as stored.
    """
    address = _normalised(email)
    contact = session.scalar(select(Contact).where(Contact.email_hash == hash_email(pepper, address)))
    if contact is None:
        return create_contact(session, pepper=pepper, email=address, fields=fields, source=source), True
    _assign(contact, clean_contact_fields(fields, session=session))
    session.flush()
    return contact, False


def upsert_contacts(
    session: Session, *, pepper: bytes, items: list[dict[str, Any]], source: str = "api",
) -> list[tuple[Contact, bool]]:
    """Validate every item first, then upsert all of them; BulkContactError (nothing written) if any is bad.

    Each item is `{"email": ..., <fields>}`. Rule 18 holds as in the import: upserting a
    suppressed address never lifts the suppression. Addresses match whatever their letter
    case (the key is the hash of the lower-cased address), so two spellings of one address
    in a request are a duplicate.
    """
    errors: list[ContactError] = []
    cleaned: list[tuple[str, str, dict[str, Any]]] = []  # (address, its hash, fields)
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        prefix = f"items[{index}]."
        fields = dict(item)
        try:
            address = _normalised(str(fields.pop("email", "")), f"{prefix}email")
            key = hash_email(pepper, address)
            if key in seen:
                raise ContactError(f"{prefix}email", f"duplicates items[{seen[key]}]")
            seen[key] = index
            cleaned.append((address, key, clean_contact_fields(fields, prefix=prefix, session=session)))
        except ContactError as exc:
            errors.append(exc)
    if errors:
        raise BulkContactError(errors)
    existing = {}
    for chunk in _chunks([k for _, k, _ in cleaned], 500):
        existing.update({c.email_hash: c for c in session.scalars(select(Contact).where(Contact.email_hash.in_(chunk)))})
    now = datetime.now(timezone.utc)
    results: list[tuple[Contact, bool]] = []
    for address, key, fields in cleaned:
        contact = existing.get(key)
        created = contact is None
        if contact is None:
            contact = Contact(email=address, email_hash=key, source=source[:200],
                              created_at=now, tags=[], custom={})
            session.add(contact)
        _assign(contact, fields)
        results.append((contact, created))
    session.flush()
    return results


def suppressed_hashes(session: Session, *, hashes: list[str]) -> set[str]:
    """Which of these address hashes are suppressed for all marketing."""
    found: set[str] = set()
    for chunk in _chunks(hashes, 500):
        found.update(session.scalars(
            select(Suppression.email_hash).where(Suppression.email_hash.in_(chunk), Suppression.scope == SCOPE_ALL)
        ))
    return found


def add_consent(
    session: Session, *, contact_id: int, kind: str, source: str, obtained_at: datetime | None = None,
    ip: str = "", wording: str = "",
) -> Consent | None:
    """Record proof of consent (GDPR Art 7(1)); CASL implied kinds get their expiry. None if no contact."""
    if kind not in {k.value for k in ConsentKind}:
        raise ContactError("kind", f"unknown consent kind {kind!r} (use one of {', '.join(k.value for k in ConsentKind)})")
    if session.get(Contact, contact_id) is None:
        return None
    obtained_at = obtained_at or datetime.now(timezone.utc)
    lifetime = CONSENT_LIFETIME.get(kind)
    consent = Consent(contact_id=contact_id, kind=kind, source=source, obtained_at=obtained_at, ip=ip,
                      wording=wording, expires_at=obtained_at + lifetime if lifetime else None)
    session.add(consent)
    session.flush()
    return consent


def list_consents(session: Session, *, contact_id: int) -> list[Consent]:
    """A contact's consent records, oldest first (withdrawn ones included: they are the proof)."""
    return list(session.scalars(select(Consent).where(Consent.contact_id == contact_id).order_by(Consent.id)))


def get_contact(session: Session, *, contact_id: int) -> Contact | None:
    """One contact by id, or None."""
    return session.get(Contact, contact_id)


def ensure_topic(session: Session, *, slug: str, name: str | None = None) -> Topic:
    """The topic with this slug, created if missing."""
    topic = session.scalar(select(Topic).where(Topic.slug == slug))
    if topic is None:
        topic = Topic(slug=slug, name=name or slug.replace("-", " ").title())
        session.add(topic)
        session.flush()
    return topic


def list_topics(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.id)))


def create_topic(session: Session, *, slug: str, name: str = "", description: str = "") -> Topic:
    """A new topic; ContactError if the slug is taken or malformed."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,99}", slug):
        raise ContactError("slug", f"{slug!r} is not a slug (lower-case letters, digits and '-')")
    if session.scalar(select(Topic.id).where(Topic.slug == slug)) is not None:
        raise ContactExists("slug", f"topic {slug!r} already exists")
    topic = Topic(slug=slug, name=name or slug.replace("-", " ").title(), description=description)
    session.add(topic)
    session.flush()
    return topic


def list_subscriptions(session: Session, *, contact_id: int) -> list[tuple[Subscription, Topic]]:
    rows = session.execute(
        select(Subscription, Topic).join(Topic, Topic.id == Subscription.topic_id)
        .where(Subscription.contact_id == contact_id).order_by(Topic.slug)
    ).all()
    return [(s, t) for s, t in rows]


def subscribe(session: Session, *, contact_id: int, topic: str) -> Subscription | None:
    """Subscribe a contact to an existing topic (idempotent); None if no contact.

    A subscription never overrides a suppression: eligibility checks both, so an opted-out
    person stays unmailed whatever their subscriptions say (COMPLIANCE rule 18).
    """
    if session.get(Contact, contact_id) is None:
        return None
    topic_row = session.scalar(select(Topic).where(Topic.slug == topic))
    if topic_row is None:
        raise ContactError("topic", f"no topic {topic!r}")
    sub = session.scalar(select(Subscription).where(Subscription.contact_id == contact_id,
                                                    Subscription.topic_id == topic_row.id))
    if sub is None:
        sub = Subscription(contact_id=contact_id, topic_id=topic_row.id)
        session.add(sub)
    elif sub.status != "subscribed":
        # The person left this topic themselves; only their own action brings them back.
        raise OptedOut("topic", f"the contact unsubscribed from {topic!r}; only their own action can resubscribe")
    sub.status = "subscribed"
    session.flush()
    return sub
