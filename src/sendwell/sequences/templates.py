"""Ready-made sequences: definitions shipped as YAML files in templates/, with values a user sets.

A template file has `title`, `description`, `values` (each with its default; `null` means it
must be set) and `definition`. `${key}` in any string of the definition is replaced by the
value; a string that is only `${key}` takes the value's type (a number stays a number), and
an optional field whose value is empty is left out.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import yaml

from sendwell.sequences.definition import DefinitionError

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,60}$")
_VALUE = re.compile(r"\$\{([a-z_]+)\}")
_LEAVE_OUT = object()  # the substitution of an optional field left empty


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
    """Every ready-made sequence: name, title, description and the values it takes with their defaults."""
    out = []
    for name in template_names():
        data = _read(name)
        out.append({"name": name, "title": data["title"], "description": " ".join(data["description"].split()),
                    "values": dict(data.get("values") or {})})
    return out


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
        if value is None or (default is None and str(value).strip() == ""):
            raise DefinitionError(f"{key}: this template needs a value for it")
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise DefinitionError(f"{key}: a whole number, not {value!r}") from None
        filled[key] = value
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
