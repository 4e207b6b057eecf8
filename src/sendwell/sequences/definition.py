"""A sequence's definition (YAML or JSON): trigger, steps with stable ids, exit rules, re-entry; validated here."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import yaml

from sendwell.segments.expression import compile_segment

TRIGGERS = {
    "contact_created": ("source", "tag"),  # a new contact (import, API, admin), optionally with this source or tag
    "tag_added": ("tag",),
    "stage_changed": ("from", "to"),
    "topic_subscribed": ("topic",),
    "signup_confirmed": ("form_id",),
    "api_event": ("name",),
    "date": ("field", "days"),  # a date of the contact's, shifted by days, comes due
}
# Dates a date trigger may watch, besides custom.<name> (an ISO date in a custom field).
DATE_FIELDS = ("created_at", "last_engaged_at", "consent_expires_at")
STEP_KINDS = ("mail", "wait", "branch", "set", "notify")
CONDITIONS = ("clicked", "opened", "replied", "segment")
END = "end"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_UNTIL = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)\s+([01]?\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EVENT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


class DefinitionError(ValueError):
    """The definition cannot be used; the message names the field at fault."""


@dataclass(frozen=True)
class Definition:
    name: str
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    exit: dict[str, Any]
    reentry_days: int | None
    raw: dict[str, Any]

    def step(self, step_id: str) -> dict[str, Any]:
        return next(s for s in self.steps if s["id"] == step_id)

    def after(self, step_id: str) -> str:
        """The id of the step after this one in the list, or "" at the end."""
        ids = [s["id"] for s in self.steps]
        i = ids.index(step_id)
        return ids[i + 1] if i + 1 < len(ids) else ""

    def target(self, step_id: str, where: str | None) -> str:
        """Where a branch goes: a later step's id, "" for the end, or the next step when not given."""
        if where is None or where == "next":
            return self.after(step_id)
        return "" if where == END else where

    @property
    def first(self) -> str:
        return self.steps[0]["id"]


def load_text(text: str) -> dict[str, Any]:
    """A definition from YAML or JSON text (JSON is YAML, but its errors read better from json)."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError(f"not valid YAML or JSON: {' '.join(str(exc).split())[:300]}") from None
    if not isinstance(data, dict):
        raise DefinitionError("the definition must be a mapping with name, trigger and steps")
    return data


def wait_delta(step: dict[str, Any]) -> timedelta | None:
    """The fixed duration of a wait step, or None when it waits until a weekday and time."""
    if "until" in step:
        return None
    return timedelta(days=float(step.get("days", 0)), hours=float(step.get("hours", 0)),
                     minutes=float(step.get("minutes", 0)))


def parse_until(text: str) -> tuple[int, int, int]:
    """`mon 09:00` → (weekday 0–6, hour, minute)."""
    match = _UNTIL.match(text.strip().lower())
    if not match:
        raise DefinitionError(f"until: {text!r} is not a weekday and time such as 'tue 09:30'")
    return WEEKDAYS.index(match.group(1)), int(match.group(2)), int(match.group(3))


def parse_definition(data: dict[str, Any]) -> Definition:
    """Check every field; DefinitionError names the first one at fault."""
    name = str(data.get("name") or "").strip()
    if not name:
        raise DefinitionError("name: the sequence needs a name")
    trigger = data.get("trigger")
    if not isinstance(trigger, dict) or trigger.get("kind") not in TRIGGERS:
        raise DefinitionError(f"trigger.kind: use one of {', '.join(TRIGGERS)}")
    unknown = set(trigger) - {"kind", *TRIGGERS[trigger["kind"]]}
    if unknown:
        raise DefinitionError(f"trigger: {trigger['kind']} takes {', '.join(TRIGGERS[trigger['kind']]) or 'nothing'}"
                              f", not {', '.join(sorted(unknown))}")
    if trigger["kind"] in ("tag_added", "topic_subscribed", "api_event") and not trigger.get(
            TRIGGERS[trigger["kind"]][0]):
        raise DefinitionError(f"trigger.{TRIGGERS[trigger['kind']][0]}: required for {trigger['kind']}")
    if trigger["kind"] == "stage_changed" and not trigger.get("to"):
        raise DefinitionError("trigger.to: the stage entered is required for stage_changed")
    if trigger["kind"] == "date":
        _check_date_trigger(trigger)
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise DefinitionError("steps: at least one step is needed")
    ids: list[str] = []
    for n, step in enumerate(steps, 1):
        if not isinstance(step, dict):
            raise DefinitionError(f"steps[{n}]: a step is a mapping with id and kind")
        step_id = str(step.get("id", ""))
        if not _ID.match(step_id):
            raise DefinitionError(f"steps[{n}].id: a stable id of lower-case letters, digits, - and _ is required")
        if step_id in ids or step_id == END:
            raise DefinitionError(f"steps[{n}].id: {step_id!r} is used twice or reserved")
        ids.append(step_id)
        _check_step(step, f"steps[{n}] ({step_id})")
    for n, step in enumerate(steps):
        if step["kind"] == "branch":
            for key in ("then", "else"):
                where = step.get(key)
                if where not in (None, "next", END) and where not in ids[n + 1:]:
                    raise DefinitionError(f"{step['id']}.{key}: {where!r} is not a later step (a branch goes forward)")
            cond = step["if"]
            for key in ("clicked", "opened"):
                if key in cond and cond[key] not in ids[:n]:
                    raise DefinitionError(f"{step['id']}.if.{key}: {cond[key]!r} is not an earlier mail step")
    exits = data.get("exit") or {}
    if not isinstance(exits, dict) or set(exits) - {"replied", "stage_left", "goal"}:
        raise DefinitionError("exit: takes replied (true/false), stage_left (a stage) and goal (a segment)")
    if exits.get("goal"):
        _segment(exits["goal"], "exit.goal")
    reentry = data.get("reentry", "never")
    if reentry in (None, "never"):
        days = None
    elif isinstance(reentry, dict) and isinstance(reentry.get("after_days"), int) and reentry["after_days"] >= 0:
        days = reentry["after_days"]
    else:
        raise DefinitionError("reentry: never, or {after_days: N}")
    return Definition(name=name[:200], trigger=dict(trigger), steps=[dict(s) for s in steps], exit=dict(exits),
                      reentry_days=days, raw=data)


def _check_date_trigger(trigger: dict[str, Any]) -> None:
    field = str(trigger.get("field") or "")
    if field not in DATE_FIELDS and not re.match(r"^custom\.[A-Za-z0-9_ -]{1,100}$", field):
        raise DefinitionError(f"trigger.field: use one of {', '.join(DATE_FIELDS)} or custom.<name>")
    days = trigger.get("days", 0)
    if isinstance(days, bool) or not isinstance(days, int) or abs(days) > 3660:
        raise DefinitionError("trigger.days: a whole number of days, negative for before the date (at most 3660)")


def _segment(expression: Any, where: str) -> None:
    try:
        compile_segment(expression)
    except ValueError as exc:
        raise DefinitionError(f"{where}: {exc}") from None


def _check_step(step: dict[str, Any], where: str) -> None:
    kind = step.get("kind")
    if kind not in STEP_KINDS:
        raise DefinitionError(f"{where}.kind: use one of {', '.join(STEP_KINDS)}")
    if kind == "mail":
        if not (step.get("template_id") or (str(step.get("subject", "")).strip() and step.get("html"))):
            raise DefinitionError(f"{where}: a mail step needs subject and html, or template_id")
    elif kind == "wait":
        if "until" in step:
            parse_until(str(step["until"]))
        else:
            try:
                delta = wait_delta(step)
            except (TypeError, ValueError):
                raise DefinitionError(f"{where}: days, hours and minutes are numbers") from None
            if delta is None or delta <= timedelta(0):
                raise DefinitionError(f"{where}: a wait needs days, hours or minutes, or until: 'mon 09:00'")
    elif kind == "branch":
        cond = step.get("if")
        if not isinstance(cond, dict) or len(cond) != 1 or next(iter(cond)) not in CONDITIONS:
            raise DefinitionError(f"{where}.if: one of {', '.join(CONDITIONS)}")
        if "segment" in cond:
            _segment(cond["segment"], f"{where}.if.segment")
    elif kind == "set":
        if not any(k in step for k in ("stage", "tag", "field")):
            raise DefinitionError(f"{where}: set a stage, a tag, or a field with value")
        if "field" in step and "value" not in step:
            raise DefinitionError(f"{where}: field needs a value")
    elif kind == "notify":
        _check_notify(step, where)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _check_notify(step: dict[str, Any], where: str) -> None:
    """An https URL (http only on loopback: a contact's address never crosses a network in clear)."""
    url = urlsplit(str(step.get("url") or ""))
    host = url.hostname or ""
    if not host or not (url.scheme == "https" or (url.scheme == "http" and _loopback(host))):
        raise DefinitionError(f"{where}.url: an https:// URL (http:// only on loopback)")
    if "event" in step and not _EVENT.match(str(step["event"])):
        raise DefinitionError(f"{where}.event: a name of lower-case letters, digits, '.', '-' and '_'")
