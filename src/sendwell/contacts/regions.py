"""Country codes and names (English, Chinese, German, French, Spanish) to ISO codes and regions."""

from __future__ import annotations

from functools import lru_cache

from babel import Locale

from sendwell.contacts.problems import FieldProblem

EU = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
EEA_EXTRA = frozenset({"IS", "LI", "NO"})  # GDPR applies in the EEA too

# Region codes drive footers and reporting; the map is configurable (SENDWELL_REGION_MAP).
REGION_OF = {"GB": "uk", "US": "us", "CA": "ca", "AU": "au", "CN": "cn"}
REGIONS = ("eu", "uk", "us", "ca", "au", "cn", "other")

_ALIASES = {
    "uk": "GB", "england": "GB", "scotland": "GB", "wales": "GB", "great britain": "GB",
    "britain": "GB", "英国": "GB", "usa": "US", "u.s.": "US", "u.s.a.": "US", "america": "US",
    "united states of america": "US", "美国": "US", "holland": "NL", "the netherlands": "NL",
    "korea": "KR", "south korea": "KR", "uae": "AE", "russia": "RU", "vietnam": "VN",
    "czech republic": "CZ", "turkey": "TR", "hong kong": "HK", "taiwan": "TW",
}


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    names: dict[str, str] = {}
    for tag in ("en", "zh_Hans", "zh_Hant", "de", "fr", "es"):
        for code, name in Locale.parse(tag).territories.items():
            if len(code) == 2 and code.isalpha():
                names.setdefault(name.casefold(), code)
    names.update(_ALIASES)
    return names


@lru_cache(maxsize=1)
def _codes() -> frozenset[str]:
    return frozenset(c for c in Locale("en").territories if len(c) == 2 and c.isalpha())


def parse_country(value: str) -> str:
    """ISO 3166 alpha-2 code for a code or a country name; ValueError if unknown."""
    text = value.strip()
    if not text:
        return ""
    if len(text) == 2 and text.upper() in _codes():
        return text.upper()
    code = _names().get(text.casefold())
    if code is None:
        raise FieldProblem("unknown country %(value)r (use an ISO code such as DE or a name)", value=value)
    return code


def region_for(country: str, overrides: dict[str, str] | None = None) -> str:
    """The region code of an ISO country code (operator overrides first)."""
    if overrides and country in overrides:
        return overrides[country]
    if country in EU or country in EEA_EXTRA:
        return "eu"
    return REGION_OF.get(country, "other")


def parse_region_map(text: str) -> dict[str, str]:
    """Overrides such as `HK=cn, MO=cn, CH=eu` (SENDWELL_REGION_MAP); ValueError naming the bad part."""
    overrides: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        country, sep, region = (x.strip() for x in part.partition("="))
        if not sep:
            raise ValueError(f"region map entry {part!r}: expected COUNTRY=region, e.g. HK=cn")
        try:
            code = parse_country(country)
        except ValueError as exc:
            raise ValueError(f"region map entry {part!r}: {exc}") from None
        if region.lower() not in REGIONS:
            raise ValueError(f"region map entry {part!r}: unknown region {region!r} (use one of {', '.join(REGIONS)})")
        overrides[code] = region.lower()
    return overrides
