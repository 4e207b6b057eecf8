"""Contacts, topics, subscriptions and consent: import, export and lookups."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.contacts.regions import parse_country, region_for
from sendwell.db.models import (
    SCOPE_ALL,
    ConsentKind,
    Consent,
    Contact,
    Stage,
    Subscription,
    Suppression,
    Topic,
)
from sendwell.suppression.service import hash_email

# Header spellings seen in exporters' spreadsheets and CRM exports, English and Chinese.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "email address", "e-mail address", "mail", "emailaddress",
              "邮箱", "电子邮件", "电子邮箱", "邮件", "邮件地址", "邮箱地址", "email地址"),
    "first_name": ("first_name", "first name", "firstname", "given name", "forename", "名", "名字"),
    "last_name": ("last_name", "last name", "lastname", "surname", "family name", "姓", "姓氏"),
    "name": ("name", "full name", "contact name", "contact", "姓名", "联系人"),
    "company": ("company", "company name", "organisation", "organization", "account",
                "公司", "公司名称", "单位", "企业"),
    "job_title": ("job_title", "job title", "title", "position", "role", "职位", "职务", "头衔"),
    "country": ("country", "country code", "country/region", "nation", "国家", "国家/地区", "国家地区", "地区"),
    "industry": ("industry", "sector", "business", "行业", "所属行业"),
    "stage": ("stage", "customer stage", "lifecycle stage", "status", "阶段", "客户阶段", "客户类型"),
    "language": ("language", "lang", "locale", "preferred language", "语言"),
    "timezone": ("timezone", "time zone", "tz", "时区"),
    "tags": ("tags", "tag", "labels", "标签"),
}
_HEADER_LOOKUP = {alias.casefold(): key for key, aliases in COLUMN_ALIASES.items() for alias in aliases}

STAGE_ALIASES = {
    "new_lead": "new_lead", "new lead": "new_lead", "lead": "new_lead", "new": "new_lead",
    "新线索": "new_lead", "线索": "new_lead", "潜在客户": "new_lead",
    "prospect": "prospect", "opportunity": "prospect", "意向客户": "prospect", "跟进中": "prospect",
    "customer": "customer", "client": "customer", "buyer": "customer", "客户": "customer",
    "老客户": "customer", "成交客户": "customer",
}

# CASL s10(10): implied consent lapses; other kinds do not expire by themselves.
CONSENT_LIFETIME = {
    ConsentKind.IMPLIED_PURCHASE.value: timedelta(days=730),
    ConsentKind.IMPLIED_INQUIRY.value: timedelta(days=183),
}


class ImportError_(ValueError):
    """The file cannot be imported; nothing was written."""


@dataclass
class RowError:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, field {self.field!r}: {self.message}"


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    suppressed: int = 0
    unchanged_columns: list[str] = field(default_factory=list)
    custom_columns: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "already_suppressed": self.suppressed,
            "custom_columns": self.custom_columns,
            "errors": [str(e) for e in self.errors],
            "dry_run": self.dry_run,
        }


def normalise_email(value: str) -> str:
    """A deliverable-looking address, domain lower-cased and IDNA-checked; ValueError if not."""
    try:
        info = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    local, _, domain = info.normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


def map_headers(headers: list[str]) -> tuple[dict[int, str], list[str]]:
    """Column index → field name; unknown headers become custom fields. Raises on no email."""
    mapping: dict[int, str] = {}
    custom: list[str] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(headers):
        header = raw.strip().lstrip("\ufeff")
        key = _HEADER_LOOKUP.get(header.casefold())
        if key is None:
            if header:
                mapping[index] = "custom:" + header
                custom.append(header)
            continue
        if key in seen:
            raise ImportError_(f"header {header!r} duplicates column {seen[key]!r} (both mean {key})")
        seen[key] = header
        mapping[index] = key
    if "email" not in seen:
        raise ImportError_(
            "no email column: expected a header such as 'email', 'E-mail' or '邮箱'; "
            f"found {', '.join(repr(h) for h in headers) or 'no headers'}"
        )
    return mapping, custom


def parse_row(values: dict[str, str], row: int, errors: list[RowError]) -> dict[str, Any] | None:
    """Validate one row into contact fields; append errors naming the row and field."""
    out: dict[str, Any] = {"custom": {}}
    before = len(errors)
    try:
        out["email"] = normalise_email(values.get("email", ""))
    except ValueError as exc:
        errors.append(RowError(row, "email", f"{values.get('email', '')!r} is not a valid address: {exc}"))
    for key in ("first_name", "last_name", "company", "job_title", "timezone"):
        out[key] = values.get(key, "").strip()
    if values.get("name") and not (out["first_name"] or out["last_name"]):
        first, _, last = values["name"].strip().partition(" ")
        out["first_name"], out["last_name"] = first, last
    out["industry"] = values.get("industry", "").strip().lower()
    try:
        out["country"] = parse_country(values.get("country", ""))
    except ValueError as exc:
        errors.append(RowError(row, "country", str(exc)))
    stage_raw = values.get("stage", "").strip()
    if stage_raw:
        stage = STAGE_ALIASES.get(stage_raw.casefold().replace("-", " ").replace("_", " ")) or \
            STAGE_ALIASES.get(stage_raw.casefold())
        if stage is None:
            errors.append(RowError(row, "stage", f"unknown stage {stage_raw!r} "
                                   f"(use one of {', '.join(s.value for s in Stage)})"))
        out["stage"] = stage
    else:
        out["stage"] = None
    language = values.get("language", "").strip().replace("_", "-")
    out["language"] = language.split("-")[0].lower() if language else None
    tags = values.get("tags", "")
    out["tags"] = sorted({t.strip() for t in tags.replace(";", ",").split(",") if t.strip()})
    for key, value in values.items():
        if key.startswith("custom:") and value.strip():
            out["custom"][key.removeprefix("custom:")] = value.strip()
    return out if len(errors) == before else None


def read_rows(path: Path) -> tuple[list[str], Iterator[list[str]]]:
    """Header and rows of a CSV file (UTF-8 with or without BOM, or GB18030 from Excel in China)."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise ImportError_(f"{path}: not UTF-8 or GB18030 text")
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        headers = next(reader)
    except StopIteration:
        raise ImportError_(f"{path}: the file is empty") from None
    return headers, reader


def import_contacts(
    session: Session,
    *,
    path: Path,
    pepper: bytes,
    source: str = "",
    consent: str | None = None,
    topic: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ImportResult:
    """Validate every row first; write nothing unless the whole file is valid."""
    now = now or datetime.now(timezone.utc)
    if consent is not None and consent not in {k.value for k in ConsentKind}:
        raise ImportError_(
            f"unknown consent kind {consent!r} (use one of {', '.join(k.value for k in ConsentKind)})"
        )
    headers, rows = read_rows(path)
    mapping, custom = map_headers(headers)
    result = ImportResult(custom_columns=custom, dry_run=dry_run)
    parsed: dict[str, dict[str, Any]] = {}
    for row_number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(headers):
            result.errors.append(RowError(row_number, "(row)", f"{len(row)} cells but {len(headers)} headers"))
            continue
        values = {mapping[i]: cell for i, cell in enumerate(row) if i in mapping}
        fields = parse_row(values, row_number, result.errors)
        if fields is not None:
            parsed[fields["email"]] = fields  # a later row for the same address wins
    if result.errors:
        return result
    _write(session, parsed, result, pepper=pepper, source=source or path.name,
           consent=consent, topic=topic, now=now)
    if dry_run:
        session.rollback()
    return result


def _write(
    session: Session,
    parsed: dict[str, dict[str, Any]],
    result: ImportResult,
    *,
    pepper: bytes,
    source: str,
    consent: str | None,
    topic: str | None,
    now: datetime,
) -> None:
    topic_row = ensure_topic(session, slug=topic) if topic else None
    existing: dict[str, Contact] = {}
    emails = list(parsed)
    for chunk in _chunks(emails, 500):
        for contact in session.scalars(select(Contact).where(Contact.email.in_(chunk))):
            existing[contact.email] = contact
    hashes = {email: hash_email(pepper, email) for email in emails}
    suppressed: set[str] = set()
    for chunk in _chunks(list(hashes.values()), 500):
        suppressed.update(
            session.scalars(
                select(Suppression.email_hash).where(
                    Suppression.email_hash.in_(chunk), Suppression.scope == SCOPE_ALL
                )
            )
        )
    new_contacts: list[Contact] = []
    for email, fields in parsed.items():
        contact = existing.get(email)
        if contact is None:
            contact = Contact(email=email, email_hash=hashes[email], source=source, created_at=now)
            new_contacts.append(contact)
            result.created += 1
        else:
            result.updated += 1
        _apply(contact, fields)
        if hashes[email] in suppressed:
            # Rule 18: re-importing never resubscribes; the suppression row stays as it is.
            result.suppressed += 1
    session.add_all(new_contacts)
    session.flush()
    contacts = list(existing.values()) + new_contacts
    if consent:
        expires = CONSENT_LIFETIME.get(consent)
        session.add_all(
            Consent(
                contact_id=c.id,
                kind=consent,
                source=f"import:{source}",
                obtained_at=now,
                wording=f"Imported from {source} with consent kind {consent}",
                expires_at=now + expires if expires else None,
            )
            for c in contacts
        )
    if topic_row is not None:
        subscribed = set(
            session.scalars(
                select(Subscription.contact_id).where(Subscription.topic_id == topic_row.id)
            )
        )
        session.add_all(
            Subscription(contact_id=c.id, topic_id=topic_row.id, created_at=now)
            for c in contacts
            if c.id not in subscribed
        )
    session.flush()


def _apply(contact: Contact, fields: dict[str, Any]) -> None:
    # Blank cells never wipe what is stored: a partial re-import only adds information.
    for key in ("first_name", "last_name", "company", "job_title", "industry", "timezone"):
        if fields[key]:
            setattr(contact, key, fields[key])
    if fields["country"]:
        contact.country = fields["country"]
        contact.region = region_for(fields["country"])
    elif contact.region is None:
        contact.region = "other"
    if fields["stage"]:
        contact.stage = fields["stage"]
    elif contact.stage is None:
        contact.stage = Stage.NEW_LEAD.value
    if fields["language"]:
        contact.language = fields["language"]
    elif contact.language is None:
        contact.language = "en"
    if fields["tags"]:
        contact.tags = sorted(set(contact.tags or []) | set(fields["tags"]))
    elif contact.tags is None:
        contact.tags = []
    if fields["custom"]:
        contact.custom = {**(contact.custom or {}), **fields["custom"]}
    elif contact.custom is None:
        contact.custom = {}


def ensure_topic(session: Session, *, slug: str, name: str | None = None) -> Topic:
    """The topic with this slug, created if missing."""
    topic = session.scalar(select(Topic).where(Topic.slug == slug))
    if topic is None:
        topic = Topic(slug=slug, name=name or slug.replace("-", " ").title())
        session.add(topic)
        session.flush()
    return topic


def get_contact(session: Session, *, contact_id: int) -> Contact | None:
    return session.get(Contact, contact_id)


EXPORT_COLUMNS = ("email", "first_name", "last_name", "company", "job_title", "country",
                  "region", "industry", "stage", "language", "tags")


def export_contacts(session: Session, *, path: Path) -> int:
    """Write contacts to CSV, leaving suppressed addresses out (rule 17: never transfer opt-outs)."""
    suppressed = select(Suppression.email_hash).where(Suppression.scope == SCOPE_ALL)
    query = select(Contact).where(Contact.email_hash.not_in(suppressed)).order_by(Contact.id)
    count = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(EXPORT_COLUMNS)
        for contact in session.scalars(query.execution_options(yield_per=1000)):
            writer.writerow(
                ";".join(contact.tags or []) if col == "tags" else getattr(contact, col)
                for col in EXPORT_COLUMNS
            )
            count += 1
    tmp.replace(path)
    return count


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- single contacts (REST API, CLI)
# Added for the REST API (issue 12); the CSV import above stays the bulk path for files.

EDITABLE_FIELDS = ("first_name", "last_name", "company", "job_title", "industry", "stage",
                   "country", "language", "timezone", "tags", "custom")


class ContactError(ValueError):
    """A contact field is invalid; `field` names it (`items[3].email` in a bulk upsert)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ContactExists(ContactError):
    """Creating a contact whose address is already stored."""


class OptedOut(ContactError):
    """The change would undo the person's own opt-out."""


class BulkContactError(ValueError):
    """At least one item of a bulk upsert is invalid; nothing was written."""

    def __init__(self, errors: list[ContactError]) -> None:
        super().__init__(f"{len(errors)} invalid items; first: {errors[0]}")
        self.errors = errors


def clean_contact_fields(values: dict[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """Validate the given fields (only those present) the way the import does; ContactError names the field."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in EDITABLE_FIELDS:
            raise ContactError(name, "not a contact field that can be set")
        if key == "stage":
            raw = str(value).strip()
            stage = STAGE_ALIASES.get(raw.casefold().replace("-", " ").replace("_", " ")) or STAGE_ALIASES.get(raw.casefold())
            if stage is None:
                raise ContactError(name, f"unknown stage {raw!r} (use one of {', '.join(s.value for s in Stage)})")
            out[key] = stage
        elif key == "country":
            try:
                out[key] = parse_country(str(value))
            except ValueError as exc:
                raise ContactError(name, str(exc)) from None
        elif key == "language":
            language = str(value).strip().replace("_", "-")
            out[key] = language.split("-")[0].lower() if language else "en"
        elif key == "industry":
            out[key] = str(value).strip().lower()
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
        raise ContactError(field, f"{email!r} is not a valid address: {exc}") from None


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
    """Store a new contact; ContactExists if the address is already stored."""
    address = _normalised(email)
    existing = session.scalar(select(Contact.id).where(Contact.email == address))
    if existing is not None:
        raise ContactExists("email", f"a contact with this address already exists (id {existing})")
    cleaned = clean_contact_fields(fields)
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
    _assign(contact, clean_contact_fields(fields))
    session.flush()
    return contact


def upsert_contact(
    session: Session, *, pepper: bytes, email: str, fields: dict[str, Any], source: str = "api",
) -> tuple[Contact, bool]:
    """Create the contact or change the given fields of the stored one; returns (contact, created)."""
    address = _normalised(email)
    contact = session.scalar(select(Contact).where(Contact.email == address))
    if contact is None:
        return create_contact(session, pepper=pepper, email=address, fields=fields, source=source), True
    _assign(contact, clean_contact_fields(fields))
    session.flush()
    return contact, False


def upsert_contacts(
    session: Session, *, pepper: bytes, items: list[dict[str, Any]], source: str = "api",
) -> list[tuple[Contact, bool]]:
    """Validate every item first, then upsert all of them; BulkContactError (nothing written) if any is bad.

    Each item is `{"email": ..., <fields>}`. Rule 18 holds as in the import: upserting a
    suppressed address never lifts the suppression.
    """
    errors: list[ContactError] = []
    cleaned: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        prefix = f"items[{index}]."
        fields = dict(item)
        try:
            address = _normalised(str(fields.pop("email", "")), f"{prefix}email")
            if address in seen:
                raise ContactError(f"{prefix}email", f"duplicates items[{seen[address]}]")
            seen[address] = index
            cleaned.append((address, clean_contact_fields(fields, prefix=prefix)))
        except ContactError as exc:
            errors.append(exc)
    if errors:
        raise BulkContactError(errors)
    existing = {}
    for chunk in _chunks([a for a, _ in cleaned], 500):
        existing.update({c.email: c for c in session.scalars(select(Contact).where(Contact.email.in_(chunk)))})
    now = datetime.now(timezone.utc)
    results: list[tuple[Contact, bool]] = []
    for address, fields in cleaned:
        contact = existing.get(address)
        created = contact is None
        if contact is None:
            contact = Contact(email=address, email_hash=hash_email(pepper, address), source=source[:200],
                              created_at=now, tags=[], custom={})
            session.add(contact)
        _assign(contact, fields)
        results.append((contact, created))
    session.flush()
    return results


def list_contacts(session: Session, *, segment: str = "", after: int = 0, limit: int = 50) -> list[Contact]:
    """Contacts by id after a cursor, optionally only those a segment expression selects."""
    from sendwell.segments.expression import compile_segment

    query = select(Contact).where(Contact.id > after).order_by(Contact.id).limit(limit)
    if segment.strip():
        query = query.where(compile_segment(segment))
    return list(session.scalars(query))


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


def list_topics(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.id)))


def create_topic(session: Session, *, slug: str, name: str = "", description: str = "") -> Topic:
    """A new topic; ContactError if the slug is taken or malformed."""
    import re

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

