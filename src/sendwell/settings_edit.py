"""Settings a marketer may change in the web admin: the sender identity and the frequency policy.

They are stored in the database (the `settings` table), so every process of the installation,
on every machine, sees them. Precedence: a SENDWELL_* environment variable > the database >
the data folder's sendwell.env > the default. A value set in the environment is shown as such
and cannot be changed here; sendwell.env is still read, so values an older release wrote there
from the admin stay in force until saved here (or moved with `sendwell settings import-env`).

Settings objects are never changed in place: every function returns a new object, which the
caller swaps in (`Runtime.replace_settings`). The web process applies its own edit at once;
every process applies the stored values at start and on its periodic scan (`apply_stored`,
`Runtime.refresh_settings`).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.config import CONFIG_FILE_NAME, Settings, read_config_file
from sendwell.db.models import StoredSetting, utcnow

# field name → (environment variable, label)
EDITABLE: dict[str, tuple[str, str]] = {
    "from_": ("SENDWELL_FROM", "From (name and address)"),
    "company_name": ("SENDWELL_COMPANY_NAME", "Company name"),
    "postal_address": ("SENDWELL_POSTAL_ADDRESS", "Postal address"),
    "contact_email": ("SENDWELL_CONTACT_EMAIL", "Contact email"),
    "contact_phone": ("SENDWELL_CONTACT_PHONE", "Contact phone"),
    "website": ("SENDWELL_WEBSITE", "Website"),
    "privacy_url": ("SENDWELL_PRIVACY_URL", "Privacy notice URL"),
    "stage_caps": ("SENDWELL_STAGE_CAPS", "Caps per customer stage"),
    "tier_caps": ("SENDWELL_TIER_CAPS", "Caps per recipient tier"),
    "send_window": ("SENDWELL_SEND_WINDOW", "Sending window"),
    "thank_you_regions": ("SENDWELL_THANK_YOU_REGIONS", "Thank-you mail after an unsubscribe (regions)"),
}
IDENTITY = ("from_", "company_name", "postal_address", "contact_email", "contact_phone", "website", "privacy_url")
POLICY = ("stage_caps", "tier_caps", "send_window", "thank_you_regions")
MAX_LENGTH = 500


class SettingsError(ValueError):
    """A value the form cannot take; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{EDITABLE[field][0]}: {message}")
        self.field = field


@dataclass(frozen=True)
class EditableValue:
    field: str
    variable: str
    label: str
    value: str
    from_environment: bool  # set by a SENDWELL_* variable: shown, not editable here
    from_database: bool = False  # saved in the admin: the same on every machine
    from_file: bool = False  # from this machine's sendwell.env only


_FIELD_OF = {variable: field for field, (variable, _label) in EDITABLE.items()}


def from_environment(field: str) -> bool:
    return bool(os.environ.get(EDITABLE[field][0], "").strip())


def editable_values(settings: Settings, stored: dict[str, str] | None = None) -> list[EditableValue]:
    """Each editable setting with its value and where that value comes from (`stored`: stored_values)."""
    stored = stored or {}
    in_file = read_config_file(settings.data_dir / CONFIG_FILE_NAME)
    out = []
    for name, (var, label) in EDITABLE.items():
        env = from_environment(name)
        out.append(EditableValue(name, var, label, str(getattr(settings, name)), env,
                                 from_database=not env and name in stored,
                                 from_file=not env and name not in stored and name in in_file))
    return out


def _check(field: str, value: str) -> None:
    if len(value) > MAX_LENGTH:
        raise SettingsError(field, f"one line of at most {MAX_LENGTH} characters")
    # Every character str.splitlines breaks at (U+2028, U+0085, \v …), not only \r and \n:
    # a reader that honours any of them would take the rest of the value as another setting.
    breaks = [char for char in value if unicodedata.category(char) in ("Cc", "Zl", "Zp") and char != "\t"]
    if breaks:
        raise SettingsError(field, f"one line of at most {MAX_LENGTH} characters, without line breaks or "
                                   f"control characters (found U+{ord(breaks[0]):04X})")
    if field == "from_" and "@" not in parseaddr(value)[1]:
        raise SettingsError(field, f"{value!r} is not a name and address such as Bright Lighting <sales@example.com>")
    if field == "contact_email" and value and "@" not in value:
        raise SettingsError(field, f"{value!r} is not an email address")
    if field in ("company_name", "postal_address") and not value.strip():
        raise SettingsError(field, "required in every marketing mail (CAN-SPAM, GDPR Art 13/14, CASL)")
    if field in ("website", "privacy_url") and value and not value.startswith(("https://", "http://")):
        raise SettingsError(field, f"{value!r} is not an http(s) URL")


def _replaced(settings: Settings, values: dict[str, str]) -> Settings:
    """A new Settings with these values; SettingsError naming the first bad value: our checks,
    then the Settings validators (caps, windows …)."""
    for field, value in values.items():
        _check(field, value)
    try:
        return settings.replace(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error.get("loc") else ""
        field = field if field in values else next(iter(values))
        raise SettingsError(field, str(error["msg"]).removeprefix("Value error, ")) from None


def stored_values(session: Session) -> dict[str, str]:
    """The settings saved in the database: field name → text (rows of unknown keys are left alone)."""
    return {_FIELD_OF[row.key]: row.value for row in session.scalars(select(StoredSetting))
            if row.key in _FIELD_OF}


def update_settings(settings: Settings, changes: dict[str, str], session: Session,
                    updated_by: str = "") -> tuple[Settings, dict[str, str]]:
    """Validate `changes` (field → new text) and store them in the database (in `session`'s transaction).

    All or nothing: one bad value stores nothing, and the error names its variable. Values
    set in the environment are refused. Returns the new settings (`settings` itself when
    nothing changed) and what actually changed; the caller commits and swaps the new object in.
    """
    for field in changes:
        if field not in EDITABLE:
            raise ValueError(f"{field!r} cannot be changed here")
    changed = {k: v.strip() for k, v in changes.items() if v.strip() != str(getattr(settings, k))}
    for field in changed:
        if from_environment(field):
            raise SettingsError(field, "set in the environment, which wins over this page; change it there")
    if not changed:
        return settings, changed
    new = _replaced(settings, changed)
    store_values(session, changed, updated_by)
    return new, changed


def store_values(session: Session, values: dict[str, str], updated_by: str = "") -> None:
    """Insert or update these (already validated) settings rows."""
    now = utcnow()
    for field, value in values.items():
        row = session.get(StoredSetting, EDITABLE[field][0])
        if row is None:
            session.add(StoredSetting(key=EDITABLE[field][0], value=value, updated_at=now, updated_by=updated_by))
        else:
            row.value, row.updated_at, row.updated_by = value, now, updated_by
    session.flush()


def apply_stored(settings: Settings, stored: dict[str, str],
                 dropped: frozenset[str] = frozenset()) -> tuple[Settings, list[str]] | None:
    """`settings` with the stored values that differ from it (fields the environment sets keep theirs).

    `dropped`: fields whose rows were deleted since the last look; they go back to this
    machine's sendwell.env, or the default. A stored value the checks refuse (edited by hand
    in the database) is skipped: what runs now stays. Returns the new settings and the names
    of the fields that changed, or None when nothing did.
    """
    wanted = {field: value for field, value in stored.items() if not from_environment(field)}
    if dropped - stored.keys():
        in_file = read_config_file(settings.data_dir / CONFIG_FILE_NAME)
        for field in dropped - stored.keys():
            if not from_environment(field):
                default = Settings.model_fields[field].default
                wanted[field] = in_file.get(field, str(default))
    return _apply(settings, wanted)


def _apply(settings: Settings, wanted: dict[str, str]) -> tuple[Settings, list[str]] | None:
    applied: dict[str, str] = {}
    for field, value in wanted.items():
        if str(getattr(settings, field)) == value:
            continue
        try:
            _replaced(settings, {field: value})
        except SettingsError:
            continue  # a bad value edited by hand: keep what runs now (a start with it names it)
        applied[field] = value
    if not applied:
        return None
    return settings.replace(**applied), list(applied)


_seen: dict[str, float] = {}


def refresh_from_file(settings: Settings, skip: frozenset[str] | set[str] = frozenset()
                      ) -> tuple[Settings, list[str]] | None:
    """Editable values changed in sendwell.env since the last look (not those the environment
    sets, nor the `skip` ones: the database's, which win over the file).

    Returns the new settings and the names of the fields that changed, or None when nothing
    did; the caller swaps the new object in.
    """
    path = settings.data_dir / CONFIG_FILE_NAME
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    key = str(path.resolve())
    if _seen.get(key) == mtime:
        return None
    _seen[key] = mtime
    values: dict[str, Any] = read_config_file(path)
    return _apply(settings, {field: values[field] for field in EDITABLE
                             if field in values and field not in skip and not from_environment(field)})


def import_file(settings: Settings, session: Session, updated_by: str = "sendwell settings import-env"
                ) -> tuple[dict[str, str], list[str]]:
    """Store the editable values of this machine's sendwell.env that the database does not hold yet.

    For values an older release wrote there from the admin: once stored, every machine uses
    them. All or nothing: a bad value stores nothing (SettingsError naming it). The file is
    left as it is (the database wins over it from now on). Returns what was stored and the
    fields skipped because the database already holds them.
    """
    in_file = read_config_file(settings.config_file)
    stored = stored_values(session)
    found = [field for field in EDITABLE if field in in_file]
    new = {field: in_file[field].strip() for field in found if field not in stored}
    if new:
        _replaced(settings, new)
        store_values(session, new, updated_by)
    return new, [field for field in found if field in stored]
