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
