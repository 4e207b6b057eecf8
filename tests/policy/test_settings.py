"""Parsing the frequency-policy settings: caps and sending windows, with errors that name the entry."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from sendwell.config import load_settings
from sendwell.policy.caps import Cap, FrequencyPolicy, PolicyError, parse_caps
from sendwell.policy.windows import WindowError, parse_window, parse_windows, zone_for


def test_caps_parse_units_and_names() -> None:
    caps = parse_caps("new_lead=2/30d, prospect=1/1w,vip=4/36h", setting="X")
    assert caps == {"new_lead": Cap(2, 30 * 86400), "prospect": Cap(1, 7 * 86400), "vip": Cap(4, 36 * 3600)}


@pytest.mark.parametrize("text", ["prospect=1 per week", "prospect", "prospect=1/0d", "=1/7d", "prospect=1/7y"])
def test_bad_caps_name_the_setting_and_entry(text) -> None:
    with pytest.raises(PolicyError, match=r"SENDWELL_STAGE_CAPS: .*" + text.split(",")[0][:4]):
        parse_caps(text, setting="SENDWELL_STAGE_CAPS")


def test_policy_round_trips_through_its_snapshot() -> None:
    policy = FrequencyPolicy(stage_caps=parse_caps("prospect=2/7d", setting="x"),
                             windows=parse_windows("mon-fri 09:00-17:00; us=daily 08:00-20:00", setting="x"))
    again = FrequencyPolicy.from_json(policy.to_json())
    assert again == policy
    assert FrequencyPolicy.from_json(None) == FrequencyPolicy()  # the defaults
    assert FrequencyPolicy().stage_caps == {"new_lead": Cap(2, 30 * 86400), "prospect": Cap(1, 7 * 86400),
                                            "customer": Cap(3, 30 * 86400)}


def test_window_days_and_next_opening() -> None:
    w = parse_window("mon-fri 09:00-17:00", setting="x")
    berlin = ZoneInfo("Europe/Berlin")
    inside = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # Wed 11:00 Berlin
    assert w.next_opening(inside, berlin) == inside
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    assert w.next_opening(saturday, berlin) == datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    assert parse_window("sat,sun 10:00-12:00", setting="x").days == {5, 6}
    assert parse_window("fri-mon 10:00-12:00", setting="x").days == {4, 5, 6, 0}
    assert parse_window("09:00-17:00", setting="x").days == set(range(7))


@pytest.mark.parametrize(("spec", "message"), [("mon-fri 17:00-09:00", "ends before it starts"),
                                               ("mon-fry 09:00-17:00", "unknown day"),
                                               ("weekdays", "cannot read"), ("mon 25:00-26:00", "impossible time")])
def test_bad_windows_say_what_is_wrong(spec, message) -> None:
    with pytest.raises(WindowError, match=f"SENDWELL_SEND_WINDOW: .*{message}"):
        parse_windows(spec, setting="SENDWELL_SEND_WINDOW")


def test_zone_falls_back_from_contact_to_country_to_region_to_utc() -> None:
    assert zone_for("Asia/Shanghai", "US", "us") == ZoneInfo("Asia/Shanghai")
    assert zone_for("", "US", "us") == ZoneInfo("America/New_York")
    assert zone_for("Not/AZone", "", "au") == ZoneInfo("Australia/Sydney")
    assert zone_for("", "ZZ", "other") == ZoneInfo("UTC")


def test_settings_are_immutable_and_a_changed_copy_is_parsed_afresh() -> None:
    settings = load_settings(from_="Old <sales@old.example>", stage_caps="prospect=1/7d")
    assert settings.sender_domain == "old.example" and settings.stage_cap_rules["prospect"].window == 7 * 86400
    with pytest.raises(ValidationError):
        settings.company_name = "Changed in place"  # type: ignore[misc]
    for copy in (settings.replace(from_="New <sales@new.example>", stage_caps="prospect=1/14d"),
                 settings.model_copy(update={"from_": "New <sales@new.example>", "stage_caps": "prospect=1/14d"})):
        # Values parsed from the old text (cached on the first object) never leak into the copy.
        assert copy.sender_domain == "new.example" and copy.stage_cap_rules["prospect"].window == 14 * 86400
    with pytest.raises(ValidationError):
        settings.replace(stage_caps="prospect=often")
