"""Settings a marketer may change in the web admin: the sender identity and the frequency policy.

They are written to `sendwell.env` in the data folder — the same file `sendwell init` writes
and every process reads at start. Settings objects are never changed in place: both functions
return a new object, which the caller swaps in (`Runtime.replace_settings`) so the running
process applies it at once. The environment still wins (DESIGN.md): a value set by a
SENDWELL_* variable is shown as such and cannot be changed here. Other processes on the
machine (`sendwell worker`) pick the file up on their next recovery scan (`refresh_from_file`).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from pydantic import ValidationError

from sendwell.config import CONFIG_FILE_NAME, Settings, read_config_file, write_config_values

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


def from_environment(field: str) -> bool:
    return bool(os.environ.get(EDITABLE[field][0], "").strip())


def editable_values(settings: Settings) -> list[EditableValue]:
    return [EditableValue(name, var, label, str(getattr(settings, name)), from_environment(name))
            for name, (var, label) in EDITABLE.items()]


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


def update_settings(settings: Settings, changes: dict[str, str]) -> tuple[Settings, dict[str, str]]:
    """Validate `changes` (field → new text) and write them to sendwell.env.

    All or nothing: one bad value changes nothing, and the error names its variable. Values
    set in the environment are refused. Returns the new settings (`settings` itself when
    nothing changed) and what actually changed; the caller swaps the new object in.
    """
    changed = {k: v.strip() for k, v in changes.items() if k in EDITABLE and v.strip() != str(getattr(settings, k))}
    for field in changes:
        if field not in EDITABLE:
            raise ValueError(f"{field!r} cannot be changed here")
    for field in changed:
        if from_environment(field):
            raise SettingsError(field, "set in the environment, which wins over this page; change it there")
    if not changed:
        return settings, changed
    new = _replaced(settings, changed)
    write_config_values(settings.data_dir / CONFIG_FILE_NAME, changed)
    return new, changed


_seen: dict[str, float] = {}


def refresh_from_file(settings: Settings) -> tuple[Settings, list[str]] | None:
    """Editable values changed in sendwell.env since the last look (not those the environment sets).

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
    applied: dict[str, str] = {}
    for field in EDITABLE:
        if field in values and not from_environment(field) and str(getattr(settings, field)) != values[field]:
            try:
                _replaced(settings, {field: values[field]})
            except SettingsError:
                continue  # a hand-edited bad line: keep what runs now (the next start names it)
            applied[field] = values[field]
    if not applied:
        return None
    return settings.replace(**applied), list(applied)
