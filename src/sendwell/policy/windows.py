"""Sending windows in the recipient's local time (e.g. weekdays 09:00–17:00)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"^\s*(?:([a-z,\-]+)\s+)?(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$", re.IGNORECASE)

# When a contact has no timezone of their own: the business capital's zone of their country.
# Countries spanning several zones get the one most importers' offices are in.
COUNTRY_TZ = {
    "US": "America/New_York", "CA": "America/Toronto", "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo", "AR": "America/Argentina/Buenos_Aires", "CL": "America/Santiago",
    "GB": "Europe/London", "IE": "Europe/Dublin", "DE": "Europe/Berlin", "FR": "Europe/Paris",
    "IT": "Europe/Rome", "ES": "Europe/Madrid", "PT": "Europe/Lisbon", "NL": "Europe/Amsterdam",
    "BE": "Europe/Brussels", "LU": "Europe/Luxembourg", "AT": "Europe/Vienna", "CH": "Europe/Zurich",
    "PL": "Europe/Warsaw", "CZ": "Europe/Prague", "SK": "Europe/Bratislava", "HU": "Europe/Budapest",
    "SE": "Europe/Stockholm", "NO": "Europe/Oslo", "DK": "Europe/Copenhagen", "FI": "Europe/Helsinki",
    "EE": "Europe/Tallinn", "LV": "Europe/Riga", "LT": "Europe/Vilnius", "GR": "Europe/Athens",
    "RO": "Europe/Bucharest", "BG": "Europe/Sofia", "HR": "Europe/Zagreb", "SI": "Europe/Ljubljana",
    "CY": "Asia/Nicosia", "MT": "Europe/Malta", "IS": "Atlantic/Reykjavik", "TR": "Europe/Istanbul",
    "RU": "Europe/Moscow", "UA": "Europe/Kyiv", "AU": "Australia/Sydney", "NZ": "Pacific/Auckland",
    "CN": "Asia/Shanghai", "HK": "Asia/Hong_Kong", "TW": "Asia/Taipei", "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul", "SG": "Asia/Singapore", "MY": "Asia/Kuala_Lumpur", "TH": "Asia/Bangkok",
    "VN": "Asia/Ho_Chi_Minh", "ID": "Asia/Jakarta", "PH": "Asia/Manila", "IN": "Asia/Kolkata",
    "AE": "Asia/Dubai", "SA": "Asia/Riyadh", "IL": "Asia/Jerusalem", "ZA": "Africa/Johannesburg",
    "EG": "Africa/Cairo", "NG": "Africa/Lagos", "KE": "Africa/Nairobi",
}
REGION_TZ = {"eu": "Europe/Brussels", "uk": "Europe/London", "us": "America/New_York",
             "ca": "America/Toronto", "au": "Australia/Sydney"}


class WindowError(ValueError):
    """A sending-window setting cannot be read."""


@dataclass(frozen=True)
class SendWindow:
    """Days of the week and a daily local-time range in which mail may go out."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    spec: str

    def contains(self, local: datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, now: datetime, tz: ZoneInfo) -> datetime:
        """`now` if inside the window, else the next opening, in UTC."""
        local = now.astimezone(tz)
        if self.contains(local):
            return now
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            if day.weekday() not in self.days:
                continue
            opening = datetime.combine(day, self.start, tzinfo=tz)
            if opening > local:
                return opening.astimezone(timezone.utc)
        raise AssertionError("a window with at least one day always opens within 8 days")


def parse_window(spec: str, *, setting: str) -> SendWindow:
    """`mon-fri 09:00-17:00`, `mon,wed,fri 08:00-12:00`, `daily 09:00-17:00` or `09:00-17:00`."""
    match = _SPEC.match(spec)
    if not match:
        raise WindowError(f"{setting}: cannot read {spec.strip()!r}; expected e.g. 'mon-fri 09:00-17:00'")
    days_text, h1, m1, h2, m2 = match.groups()
    try:
        start, end = time(int(h1), int(m1)), time(int(h2), int(m2))
    except ValueError:
        raise WindowError(f"{setting}: {spec.strip()!r} has an impossible time of day") from None
    if start >= end:
        raise WindowError(f"{setting}: {spec.strip()!r} ends before it starts")
    return SendWindow(_parse_days(days_text or "daily", spec, setting), start, end, spec.strip())


def _parse_days(text: str, spec: str, setting: str) -> frozenset[int]:
    if text.lower() in ("daily", "all"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise WindowError(f"{setting}: unknown day in {spec.strip()!r} (use mon, tue, … sun)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def parse_windows(text: str, *, setting: str) -> dict[str, SendWindow]:
    """`mon-fri 09:00-17:00; us=mon-fri 08:00-18:00`: a bare spec applies to every region ("*")."""
    windows: dict[str, SendWindow] = {}
    for entry in (e.strip() for e in text.split(";") if e.strip()):
        region, sep, spec = entry.partition("=")
        key = region.strip().lower() if sep else "*"
        windows[key] = parse_window(spec if sep else entry, setting=setting)
    return windows


@lru_cache(maxsize=512)
def zone_for(tz_name: str, country: str, region: str) -> ZoneInfo:
    """The contact's own zone, else their country's, else their region's, else UTC."""
    for name in (tz_name, COUNTRY_TZ.get(country.upper(), ""), REGION_TZ.get(region, "")):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def window_for(windows: dict[str, SendWindow], region: str) -> SendWindow | None:
    return windows.get(region) or windows.get("*")
