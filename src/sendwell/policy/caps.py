"""Frequency policy: per-stage caps, recipient tiers and sending windows, parsed from settings.

A leaf: it imports only the standard library and policy.windows, so config can parse its
settings with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sendwell.policy.windows import SendWindow, parse_windows

# DESIGN.md's defaults: new lead ≤ 2 per 30 days, prospect ≤ 1 per 7 days, customer ≤ 3 per
# 30 days.
DEFAULT_STAGE_CAPS = "new_lead=2/30d,prospect=1/7d,customer=3/30d"
# Tiers the recipient chooses on the preference center; `launches_only` is not a count but
# a kind filter (see eligibility.py).
DEFAULT_TIER_CAPS = "weekly=1/7d,monthly=1/30d"
TIERS = ("default", "weekly", "monthly", "launches_only")

OVER_CAP_MODES = ("skip", "defer")

_RULE = re.compile(r"^\s*([a-z0-9_\-]+)\s*=\s*(\d+)\s*/\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_UNIT = {"h": 3600, "d": 86400, "w": 7 * 86400}


class PolicyError(ValueError):
    """A frequency-policy setting cannot be read."""


@dataclass(frozen=True)
class Cap:
    """At most `count` mails in any rolling window of `window` seconds."""

    count: int
    window: int  # seconds

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.window)

    def __str__(self) -> str:
        days, rest = divmod(self.window, 86400)
        return f"{self.count}/{days}d" if not rest else f"{self.count}/{self.window // 3600}h"


def parse_caps(text: str, *, setting: str) -> dict[str, Cap]:
    """Parse `name=N/7d,name=N/30d` (units h, d, w); the error names the setting and the entry."""
    caps: dict[str, Cap] = {}
    for entry in (e for e in text.split(",") if e.strip()):
        match = _RULE.match(entry)
        if not match:
            raise PolicyError(f"{setting}: cannot read {entry.strip()!r}; expected name=COUNT/PERIOD such as prospect=1/7d")
        name, count, amount, unit = match.groups()
        if int(amount) == 0:
            raise PolicyError(f"{setting}: {entry.strip()!r} has an empty period")
        caps[name.lower()] = Cap(int(count), int(amount) * _UNIT[unit.lower()])
    return caps


@dataclass(frozen=True)
class FrequencyPolicy:
    """The rules a campaign is planned and sent under; snapshotted on the campaign at plan time."""

    stage_caps: dict[str, Cap] = field(default_factory=lambda: parse_caps(DEFAULT_STAGE_CAPS, setting="default"))
    tier_caps: dict[str, Cap] = field(default_factory=lambda: parse_caps(DEFAULT_TIER_CAPS, setting="default"))
    windows: dict[str, SendWindow] = field(default_factory=dict)  # region (or "*") → window

    @classmethod
    def from_settings(cls, settings: Any) -> FrequencyPolicy:
        """Build the policy from SENDWELL_STAGE_CAPS, SENDWELL_TIER_CAPS and SENDWELL_SEND_WINDOW."""
        # Parsed once per settings object (config caches them), not once per campaign.
        return cls(stage_caps=settings.stage_cap_rules, tier_caps=settings.tier_cap_rules, windows=settings.send_windows)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage_caps": {k: [c.count, c.window] for k, c in self.stage_caps.items()},
            "tier_caps": {k: [c.count, c.window] for k, c in self.tier_caps.items()},
            "windows": {k: w.spec for k, w in self.windows.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FrequencyPolicy:
        if not data:
            return cls()
        windows = parse_windows(";".join(f"{k}={v}" for k, v in data.get("windows", {}).items()), setting="campaign policy")
        return cls(
            stage_caps={k: Cap(*v) for k, v in data.get("stage_caps", {}).items()},
            tier_caps={k: Cap(*v) for k, v in data.get("tier_caps", {}).items()},
            windows=windows,
        )

    def caps_for(self, stage: str, tier: str) -> list[Cap]:
        """Every cap that binds this contact: the stricter limit is all of them holding at once."""
        return [c for c in (self.stage_caps.get(stage), self.tier_caps.get(tier)) if c is not None]

    def windows_in_use(self) -> list[int]:
        return sorted({c.window for c in (*self.stage_caps.values(), *self.tier_caps.values())})
