"""Ready-made sequences: definitions shipped as YAML files in templates/, with values a user sets.

A template file has `values` (each with its default; `null` means it must be set) and `definition`.
`${key}` in any string of the definition is replaced by the value; a string that is only `${key}`
takes the value's type (a number stays a number), and an optional field whose value is empty is
left out. What a person reads of a template (title, description, each value's label and help) is
in TEXTS here, marked for the admin's catalog; the mails in the definition stay English on purpose
(they go to foreign buyers).
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import yaml

from sendwell.i18n.messages import N_
from sendwell.sequences.definition import DefinitionError

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,60}$")
_VALUE = re.compile(r"\$\{([a-z_]+)\}")
_LEAVE_OUT = object()  # the substitution of an optional field left empty
NEEDS_VALUE = N_("this template needs a value for it")
WHOLE_NUMBER = N_("a whole number, such as -30")
_NAME_VALUE = (N_("Sequence name"), N_("How it is listed among your sequences."))

# Per template: title, description and, per value, (label, help: what to enter).
TEXTS: dict[str, dict[str, Any]] = {
    "customer-onboarding": {
        "title": N_("New customer onboarding"),
        "description": N_("When a contact's stage becomes customer: a welcome with whom to ask at once, a check-in "
                          "on the first order two weeks later, then a tag. Ends if they stop being a customer or "
                          "reply."),
        "values": {"name": _NAME_VALUE,
                   "tag": (N_("Tag at the end"),
                           N_("Added after the check-in, so you can find the customers who went through it."))},
    },
    "re-permission": {
        "title": N_("Re-permission before implied consent lapses"),
        "description": N_("A month before a contact's implied consent lapses (CASL: 2 years after a purchase, 6 "
                          "months after an inquiry), asks them to confirm through a signup form, which records "
                          "express consent; one reminder a week later; ends for those who do not confirm. Never "
                          "mails anyone unsubscribed."),
        "values": {"name": _NAME_VALUE,
                   "days": (N_("When to ask"),
                            N_("Days from the lapse; a negative number is before it (-30: a month before).")),
                   "confirm_url": (N_("Confirmation page"),
                                   N_("The address of one of your signup forms' pages (see Forms): confirming "
                                      "there records express consent."))},
    },
    "signup-welcome": {
        "title": N_("Website signup welcome"),
        "description": N_("Welcomes a person who confirmed a signup form (double opt-in) at once, and four days "
                          "later says how you work with buyers. Ends when they reply."),
        "values": {"name": _NAME_VALUE,
                   "form_id": (N_("Signup form"),
                               N_("Only for one form: its number, the digits at the end of its page's address. "
                                  "Leave empty for every form."))},
    },
    "trade-fair": {
        "title": N_("Trade-fair follow-up"),
        "description": N_("Thanks the buyers you met at your stand at once, sends the catalogue three days later "
                          "and, a week after that, offers samples to those who clicked it (they become prospects). "
                          "Ends when the buyer replies or becomes a customer."),
        "values": {"name": _NAME_VALUE,
                   "tag": (N_("Tag of the buyers you met"),
                           N_("The tag you give the buyers you met at the fair: giving it starts the sequence for "
                              "them.")),
                   "fair": (N_("The fair, as the mails name it"),
                            N_("Written into the English mails, so in English: for example, the Canton Fair.")),
                   "catalogue_url": (N_("Catalogue link"),
                                     N_("Where the catalogue link in the second mail goes: a PDF or a page on "
                                        "your website."))},
    },
}


def _folder() -> Any:
    return files("sendwell.sequences") / "templates"


def _read(name: str) -> dict[str, Any]:
    path = _folder() / f"{name}.yaml"
    if not _NAME.match(name) or not path.is_file():
        raise DefinitionError(f"template: no ready-made sequence {name!r} (there are {', '.join(template_names())})")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def template_names() -> list[str]:
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".yaml"))


def list_templates() -> list[dict[str, Any]]:
    """Every ready-made sequence: name, title, description, the values it takes with their defaults and,
    per value, its label, help and whether it must be set (`fields`; English, the admin translates)."""
    out = []
    for name in template_names():
        values = dict(_read(name).get("values") or {})
        text = TEXTS[name]
        fields = [{"key": key, "label": text["values"][key][0], "help": text["values"][key][1],
                   "required": default is None, "default": default} for key, default in values.items()]
        out.append({"name": name, "title": text["title"], "description": text["description"], "values": values,
                    "fields": fields})
    return out


def value_problems(name: str, values: dict[str, str] | None = None) -> dict[str, str]:
    """Per value that cannot be used as given, why (an English template of the catalog: NEEDS_VALUE, WHOLE_NUMBER)."""
    defaults: dict[str, Any] = dict(_read(name).get("values") or {})
    return {key: problem for key, default in defaults.items()
            if (problem := _problem(default, (values or {}).get(key, default)))}


def _problem(default: Any, value: Any) -> str | None:
    if value is None or (default is None and str(value).strip() == ""):
        return NEEDS_VALUE
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, str):
        try:
            int(value)
        except ValueError:
            return WHOLE_NUMBER
    return None


def load_template(name: str, values: dict[str, str] | None = None) -> dict[str, Any]:
    """The definition of a ready-made sequence with its values filled in; DefinitionError names a bad value."""
    data = _read(name)
    defaults: dict[str, Any] = dict(data.get("values") or {})
    given = dict(values or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise DefinitionError(f"{', '.join(unknown)}: not a value of this template (it takes {', '.join(defaults)})")
    filled: dict[str, Any] = {}
    for key, default in defaults.items():
        value = given.get(key, default)
        problem = _problem(default, value)
        if problem:
            raise DefinitionError(f"{key}: {problem}" + (f", not {value!r}" if problem == WHOLE_NUMBER else ""))
        is_number = isinstance(default, int) and not isinstance(default, bool) and isinstance(value, str)
        filled[key] = int(value) if is_number else value
    return _fill(data["definition"], filled)


def _fill(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        filled = {k: _fill(v, values) for k, v in node.items()}
        return {k: v for k, v in filled.items() if v is not _LEAVE_OUT}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if not isinstance(node, str):
        return node
    whole = _VALUE.fullmatch(node)
    if whole:
        value = values[whole.group(1)]
        return _LEAVE_OUT if value == "" else value
    return _VALUE.sub(lambda m: str(values[m.group(1)]), node)
