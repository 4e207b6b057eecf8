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
from sendwell.i18n.messages import N_, coded, english, message, plain

# field name → (environment variable, label)
EDITABLE: dict[str, tuple[str, str]] = {
    "from_": ("SENDWELL_FROM", N_("From (name and address)")),
    "company_name": ("SENDWELL_COMPANY_NAME", N_("Company name")),
    "postal_address": ("SENDWELL_POSTAL_ADDRESS", N_("Postal address")),
    "contact_email": ("SENDWELL_CONTACT_EMAIL", N_("Contact email")),
    "contact_phone": ("SENDWELL_CONTACT_PHONE", N_("Contact phone")),
    "website": ("SENDWELL_WEBSITE", N_("Website")),
    "privacy_url": ("SENDWELL_PRIVACY_URL", N_("Privacy notice URL")),
    "stage_caps": ("SENDWELL_STAGE_CAPS", N_("Caps per customer stage")),
    "tier_caps": ("SENDWELL_TIER_CAPS", N_("Caps per recipient tier")),
    "send_window": ("SENDWELL_SEND_WINDOW", N_("Sending window")),
    "thank_you_regions": ("SENDWELL_THANK_YOU_REGIONS", N_("Thank-you mail after an unsubscribe (regions)")),
}
# What each setting does, shown under its field: a message whose params are the setting's syntax
# (examples, units, keywords), which the admin shows as code; a `coded()` param is shown as its label.
HELP: dict[str, dict[str, Any]] = {
    "from_": message(N_("The name and address every mail comes from, such as %(example)s. Its domain is the one "
                        "the sender-domain check judges."), example="Bright Lighting <sales@example.com>"),
    "company_name": message(N_("Your company's legal name, printed in the footer of every marketing mail.")),
    "postal_address": message(N_("A postal address where you can be reached, printed in the footer of every "
                                 "marketing mail (CAN-SPAM, GDPR, CASL).")),
    "contact_email": message(N_("Where recipients can write to you; shown in the footer and on the unsubscribe "
                                "pages.")),
    "contact_phone": message(N_("Optional; shown in the footer when set.")),
    "website": message(N_("Optional; your website, linked in the footer (%(http)s or %(https)s)."),
                       http="http://", https="https://"),
    "privacy_url": message(N_("Your privacy notice, linked in the footer (%(http)s or %(https)s). Without it the "
                              "footer says the notice is available on request."), http="http://", https="https://"),
    "stage_caps": message(N_("At most %(count)s mails per rolling %(period)s (%(h)s hours, %(d)s days or %(w)s "
                             "weeks) for each customer stage, written %(syntax)s, such as %(example)s, where "
                             "%(code)s is the stage %(stage)s. A stage not listed has no stage cap."),
                          count="COUNT", period="PERIOD", h="h", d="d", w="w", syntax="stage=COUNT/PERIOD",
                          example="new_lead=2/30d,prospect=1/7d", code="new_lead", stage=coded("stage", "new_lead")),
    "tier_caps": message(N_("The same for the frequency tiers recipients choose on the preference page, such as "
                            "%(example)s."), example="weekly=1/7d,monthly=1/30d"),
    "send_window": message(N_("When mail may go out, in the recipient's local time, such as %(window)s, or per "
                              "region: %(regions)s. Empty: any time."),
                           window="mon-fri 09:00-17:00", regions="mon-fri 09:00-17:00; us=mon-fri 08:00-18:00"),
    "thank_you_regions": message(N_("Who gets one thank-you mail after unsubscribing: %(all)s (everyone), %(none)s "
                                    "(no one), or regions such as %(regions)s."),
                                 all="all", none="none", regions="eu,uk,us"),
}
IDENTITY = ("from_", "company_name", "postal_address", "contact_email", "contact_phone", "website", "privacy_url")
POLICY = ("stage_caps", "tier_caps", "send_window", "thank_you_regions")
MAX_LENGTH = 500


class SettingsError(ValueError):
    """A value the form cannot take; `field` names it. `template` and `params` are the message to translate."""

    def __init__(self, field: str, problem: str | dict[str, Any]) -> None:
        problem = plain(problem) if isinstance(problem, str) else problem
        self.template = ERROR
        self.params: dict[str, Any] = {"variable": EDITABLE[field][0], "problem": problem}
        super().__init__(english(self.template, self.params))
        self.field = field


ERROR = N_("%(variable)s: %(problem)s")
ONE_LINE = N_("one line of at most %(max)s characters")
NO_BREAKS = N_("one line of at most %(max)s characters, without line breaks or control characters (found "
               "U+%(code)s)")
NOT_FROM = N_("%(value)s is not a name and address such as Bright Lighting <sales@example.com>")
NOT_EMAIL = N_("%(value)s is not an email address")
REQUIRED = N_("required in every marketing mail (CAN-SPAM, GDPR Art 13/14, CASL)")
NOT_URL = N_("%(value)s is not an http(s) URL")
FROM_ENVIRONMENT = N_("set in the environment, which wins over this page; change it there")


@dataclass(frozen=True)
class EditableValue:
    field: str
    variable: str
    label: str
    value: str
    from_environment: bool  # set by a SENDWELL_* variable: shown, not editable here
    from_database: bool = False  # saved in the admin: the same on every machine
    from_file: bool = False  # from this machine's sendwell.env only
    help: dict[str, Any] | None = None  # what it does: a message (HELP)


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
                                 from_file=not env and name not in stored and name in in_file,
                                 help=HELP.get(name)))
    return out


def _check(field: str, value: str) -> None:
    if len(value) > MAX_LENGTH:
        raise SettingsError(field, message(ONE_LINE, max=MAX_LENGTH))
    # Every character str.splitlines breaks at (U+2028, U+0085, \v …), not only \r and \n:
    # a reader that honours any of them would take the rest of the value as another setting.
    breaks = [char for char in value if unicodedata.category(char) in ("Cc", "Zl", "Zp") and char != "\t"]
    if breaks:
        raise SettingsError(field, message(NO_BREAKS, max=MAX_LENGTH, code=f"{ord(breaks[0]):04X}"))
    if field == "from_" and "@" not in parseaddr(value)[1]:
        raise SettingsError(field, message(NOT_FROM, value=repr(value)))
    if field == "contact_email" and value and "@" not in value:
        raise SettingsError(field, message(NOT_EMAIL, value=repr(value)))
    if field in ("company_name", "postal_address") and not value.strip():
        raise SettingsError(field, message(REQUIRED))
    if field in ("website", "privacy_url") and value and not value.startswith(("https://", "http://")):
        raise SettingsError(field, message(NOT_URL, value=repr(value)))


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
            raise SettingsError(field, message(FROM_ENVIRONMENT))
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
