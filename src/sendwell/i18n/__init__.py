"""Translations of system text (footers, notices, recipient pages) from Babel .po catalogs.

Catalogs live in `i18n/locales/<locale>/LC_MESSAGES/<domain>.po`, one domain per context
(`content` for mail footers and notices, `pages` for the recipient pages, `admin` for the admin);
a domain may be split by feature into `<domain>-<feature>.po` files, merged at load. They are read as
.po at first use and cached, so no compile step is needed at install time.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).with_name("locales")
SUPPORTED = ("en", "zh_Hans", "de", "fr", "es")
DEFAULT = "en"


def normalise_language(tag: str | None) -> str | None:
    """A supported locale for a BCP 47 tag (`zh-CN` → `zh_Hans`, `de-AT` → `de`), or None."""
    if not tag:
        return None
    try:
        locale = Locale.parse(tag.strip().replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None
    if locale.language == "zh":
        # Simplified Chinese for mainland China, Singapore and an unmarked `zh`.
        return "zh_Hans" if locale.script in (None, "Hans") and locale.territory not in ("TW", "HK", "MO") else None
    return locale.language if locale.language in SUPPORTED else None


def choose_language(contact_language: str | None = None, accept_language: str | None = None) -> str:
    """The contact's own language first, then the browser's Accept-Language, then English."""
    chosen = normalise_language(contact_language)
    if chosen:
        return chosen
    for tag in _accept_language_tags(accept_language or ""):
        chosen = normalise_language(tag)
        if chosen:
            return chosen
    return DEFAULT


def _accept_language_tags(header: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        if not tag or tag == "*":
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


@lru_cache(maxsize=64)
def translations(language: str, domain: str) -> NullTranslations:
    """gettext-style translations for a supported language and a catalog domain."""
    folder = LOCALES_DIR / language / "LC_MESSAGES"
    path = folder / f"{domain}.po"
    if language == DEFAULT or not path.exists():
        return NullTranslations()
    merged = _load(path, language, domain)
    # A domain may be split by feature: `admin.po` plus `admin-contacts.po`, `admin-reports.po`, …
    # are one catalog (a later file wins for a message both define).
    for part in sorted(folder.glob(f"{domain}-*.po")):
        merged.merge(_load(part, language, domain))
    return merged


def _load(path: Path, language: str, domain: str) -> Translations:
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=domain)
