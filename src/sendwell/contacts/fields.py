"""Contact fields from spreadsheet cells: header aliases, mapping overrides, validation of one row."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from babel import Locale, UnknownLocaleError
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from sendwell.contacts.lawful_basis import normalise_kind
from sendwell.contacts.problems import FieldProblem, address_problem
from sendwell.contacts.regions import parse_country
from sendwell.contacts.vocabulary import Vocab

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
    "consent": ("consent", "consent kind", "consent type", "lawful basis", "同意类型", "授权类型"),
    "consent_date": ("consent_date", "consent date", "consented at", "opt-in date", "同意时间", "同意日期"),
}
FIELDS = tuple(COLUMN_ALIASES)
IGNORE = "-"
_HEADER_LOOKUP = {alias.casefold(): key for key, aliases in COLUMN_ALIASES.items() for alias in aliases}


class ImportFileError(FieldProblem):
    """The file cannot be imported; nothing was written (a message template and its values)."""




@dataclass
class RowError:
    row: int
    field: str
    message: str
    # The message as a template and its values, for the admin to translate (`message` is the English).
    template: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: int, field_name: str, template: str, **params: Any) -> RowError:
        """A row error from a message template and its values."""
        return cls(row, field_name, template % params if params else template, template, params)

    @classmethod
    def from_problem(cls, row: int, field_name: str, exc: ValueError) -> RowError:
        """A row error from a parser's ValueError; a FieldProblem keeps its template."""
        if isinstance(exc, FieldProblem):
            return cls(row, field_name, str(exc), exc.template, exc.params)
        return cls(row, field_name, str(exc), "%(detail)s", {"detail": str(exc)})

    def __str__(self) -> str:
        return f"row {self.row}, field {self.field!r}: {self.message}"


# --------------------------------------------------------------------- email
# A plain ASCII address (the vast majority) is checked by this pattern alone; anything else
# (IDNA, quoted local parts, unusual domains) goes through email-validator. A property test
# checks that both agree on what the pattern accepts.
_SIMPLE_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)
_SPECIAL = frozenset(d.lower() for d in SPECIAL_USE_DOMAIN_NAMES)


def normalise_email(value: str) -> str:
    """A deliverable-looking address, domain lower-cased and IDNA-checked; ValueError if not."""
    text = value.strip()
    match = _SIMPLE_EMAIL.fullmatch(text)
    if match and len(text) <= 254 and text.index("@") <= 64 and "--" not in match.group(1):
        domain = match.group(1).lower()
        # The special-use names are single labels, and the pattern needs a dot: check the TLD.
        if domain.rpartition(".")[2] not in _SPECIAL:
            return text[: match.start(1)] + domain
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    local, _, domain = info.normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalise_email_slow(value: str) -> str:
    """The same as normalise_email, always through email-validator (for tests)."""
    try:
        info = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    local, _, domain = info.normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


# ------------------------------------------------------------------- headers
def parse_mapping(text: str) -> dict[str, str]:
    """`--map "Mail Address=email,Firma=company,Notes=-"` → {header: field}; ImportFileError if malformed."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        header, sep, target = part.rpartition("=")
        header, target = header.strip(), target.strip()
        if not sep or not header:
            raise ImportFileError(f"--map entry {part!r}: expected 'Column header=field'")
        key = target.lower()
        if key in ("ignore", IGNORE):
            mapping[header] = IGNORE
        elif key.startswith(("custom.", "custom:")) and len(target) > 7:
            mapping[header] = "custom:" + target[7:]
        elif key in FIELDS:
            mapping[header] = key
        else:
            raise ImportFileError(
                f"--map entry {part!r}: unknown field {target!r} "
                f"(use one of {', '.join(FIELDS)}, custom.<name>, or - to ignore the column)"
            )
    return mapping


def map_headers(headers: list[str], overrides: dict[str, str] | None = None) -> tuple[dict[int, str], list[str]]:
    """Column index → field name; unknown headers become custom fields. ImportFileError on no email."""
    given = {k.strip(): v for k, v in (overrides or {}).items()}
    overrides = {k.casefold(): v for k, v in given.items()}
    cleaned = [h.strip().lstrip("\ufeff") for h in headers]
    present = {h.casefold() for h in cleaned}
    missing = [k for k in given if k.casefold() not in present]
    if missing:
        raise ImportFileError(
            "--map names %(missing)s, which is not a column of the file (columns: %(columns)s)",
            missing=", ".join(repr(m) for m in missing), columns=", ".join(repr(h) for h in cleaned if h),
        )
    mapping: dict[int, str] = {}
    custom: list[str] = []
    seen: dict[str, str] = {}
    for index, header in enumerate(cleaned):
        key = overrides.get(header.casefold()) or _HEADER_LOOKUP.get(header.casefold())
        if key == IGNORE or (key is None and not header):
            continue
        if key is None or key.startswith("custom:"):
            name = key.removeprefix("custom:") if key else header
            mapping[index] = "custom:" + name
            custom.append(name)
            continue
        if key in seen:
            raise ImportFileError("header %(header)r duplicates column %(other)r (both mean %(field)s); "
                                  "use --map '%(header)s=-' to ignore one", header=header, other=seen[key], field=key)
        seen[key] = header
        mapping[index] = key
    if "email" not in seen:
        raise ImportFileError(
            "no email column: expected a header such as 'email', 'E-mail' or '邮箱' "
            "(or --map 'Your header=email'); found %(found)s",
            found=", ".join(repr(h) for h in cleaned if h) or "no headers",
        )
    return mapping, custom


# ------------------------------------------------------------- cell values
@lru_cache(maxsize=4096)
def parse_language(value: str) -> str:
    """A BCP 47 tag (`de`, `de-AT`, `zh-Hans-CN`) or a language name in English or Chinese; ValueError."""
    text = value.strip().replace("_", "-")
    names = _language_names()
    if text.casefold() in names:
        return names[text.casefold()]
    parts = text.split("-")
    lang = parts[0].lower()
    if not (2 <= len(lang) <= 3 and lang.isalpha() and lang.isascii()):
        raise FieldProblem("unknown language %(value)r (use a BCP 47 tag such as en, de-AT or zh-Hans)", value=value)
    out = [lang]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha() and part.isascii():
            out.append(part.title())  # script
        elif (len(part) == 2 and part.isalpha() and part.isascii()) or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())  # region
        else:
            raise FieldProblem("language tag %(value)r: cannot read %(part)r (use e.g. en, de-AT or zh-Hans)",
                                   value=value, part=part)
    try:
        Locale.parse(lang)
    except (ValueError, UnknownLocaleError):
        raise FieldProblem("unknown language %(value)r (use a BCP 47 tag such as en, de-AT or zh-Hans)",
                           value=value) from None
    tag = "-".join(out)
    if len(tag) > 10:
        raise FieldProblem("language tag %(value)r is longer than the 10 characters stored", value=value)
    return tag


@lru_cache(maxsize=1)
def _language_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for tag in ("en", "zh_Hans"):
        for code, name in Locale.parse(tag).languages.items():
            if "_" not in code and 2 <= len(code) <= 3:
                names.setdefault(name.casefold(), code)
    names.update({"中文": "zh", "简体中文": "zh-Hans", "繁體中文": "zh-Hant", "繁体中文": "zh-Hant", "英文": "en"})
    return names


@lru_cache(maxsize=1)
def _timezones() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def parse_timezone(value: str) -> str:
    """An IANA time zone name known to zoneinfo (`Europe/Berlin`); ValueError if unknown."""
    name = _timezones().get(value.strip().casefold())
    if name is None:
        raise FieldProblem("unknown time zone %(value)r (use an IANA name such as Europe/Berlin)", value=value)
    return name


def parse_date(value: str) -> datetime:
    """A consent date: ISO date or date-time; naive values are taken as UTC."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise FieldProblem("cannot read date %(value)r (use YYYY-MM-DD)", value=value) from None
    if isinstance(parsed, date) and not isinstance(parsed, datetime):  # pragma: no cover
        parsed = datetime(parsed.year, parsed.month, parsed.day)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


_parse_country = lru_cache(maxsize=4096)(parse_country)


@dataclass
class RowParser:
    """Validates rows against the vocabularies; every problem becomes a RowError naming the field."""

    industries: Vocab
    stages: Vocab
    now: datetime
    has_custom: bool = True
    # The fields the file has columns for; the others are left at their defaults unread.
    fields: frozenset[str] = frozenset(FIELDS)

    def parse(self, values: dict[str, str], row: int, errors: list[RowError]) -> dict[str, Any] | None:
        """Contact fields of one row, or None (with errors appended)."""
        before = len(errors)
        out: dict[str, Any] = {}
        email = values.get("email", "")
        try:
            out["email"] = normalise_email(email)
        except ValueError as exc:
            errors.append(RowError.from_problem(row, "email", address_problem(repr(email), str(exc)) if email.strip()
                                                else FieldProblem("The address is empty.")))
        for key in ("first_name", "last_name", "company", "job_title"):
            out[key] = values.get(key, "").strip()
        full = values.get("name", "").strip()
        if full and not (out["first_name"] or out["last_name"]):
            first, _, last = full.partition(" ")
            out["first_name"], out["last_name"] = first, last.strip()
        for key, limit in (("first_name", 200), ("last_name", 200), ("company", 300), ("job_title", 200)):
            if len(out[key]) > limit:
                errors.append(RowError.of(row, key, "longer than %(limit)s characters", limit=limit))
        present = self.fields
        out["country"] = self._field(values, "country", _parse_country, row, errors, default="") \
            if "country" in present else ""
        out["industry"] = self._vocab(values, "industry", self.industries, row, errors) \
            if "industry" in present else None
        out["stage"] = self._vocab(values, "stage", self.stages, row, errors) if "stage" in present else None
        out["language"] = self._field(values, "language", parse_language, row, errors) \
            if "language" in present else None
        out["timezone"] = self._field(values, "timezone", parse_timezone, row, errors) \
            if "timezone" in present else None
        out["consent"] = self._field(values, "consent", normalise_kind, row, errors) if "consent" in present else None
        when = self._field(values, "consent_date", parse_date, row, errors) if "consent_date" in present else None
        if when is not None and when > self.now:
            errors.append(RowError.of(row, "consent_date", "%(value)r is in the future",
                                      value=values["consent_date"]))
        out["consent_date"] = when
        tags = values.get("tags", "").strip()
        out["tags"] = sorted({t.strip() for t in tags.replace(";", ",").replace("，", ",").split(",") if t.strip()}) \
            if tags else []
        out["custom"] = {k[7:]: v.strip() for k, v in values.items() if k[:7] == "custom:" and v.strip()} \
            if self.has_custom else {}
        return out if len(errors) == before else None

    @staticmethod
    def _field(values: dict[str, str], key: str, parse: Any, row: int, errors: list[RowError],
               default: Any = None) -> Any:
        raw = values.get(key, "")
        if not raw.strip():
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            errors.append(RowError.from_problem(row, key, exc))
            return default

    @staticmethod
    def _vocab(values: dict[str, str], key: str, vocab: Vocab, row: int, errors: list[RowError]) -> str | None:
        raw = values.get(key, "").strip()
        if not raw:
            return None
        value = vocab.resolve(raw)
        if value is None:
            errors.append(RowError.of(
                row, key,
                "unknown %(field)s %(value)r (known: %(known)s; add it with "
                "`sendwell contacts vocabulary add %(field)s '%(value)s'` or map it in the file)",
                field=key, value=raw, known=vocab.describe(),
            ))
        return value
