"""Messages built in code for people: an English template with `%(name)s` placeholders plus its params.

The English text (`template % params`) goes to the CLI, the API and the logs; the admin translates the
template and then formats it (`render`). A param that is itself a message (`{"template": …, "params": …}`,
made by `message()`) is rendered the same way first, so words such as a metric or a mode read in the
reader's language; a list of messages is joined with "; ". A param made by `coded()` is a stored code
(a region, a stage): English shows the code, the admin its label. Templates are marked with `N_()` so the
catalog check (tests/i18n) finds every one of them in the code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Translate = Callable[[str], str]
Label = Callable[[str, Any], str]


def N_(template: str) -> str:  # the gettext name for "mark for the catalog, translate later"
    """Mark a template for the catalog; returned unchanged."""
    return template


def message(template: str, **params: Any) -> dict[str, Any]:
    """A message as stored data and as a param of another message."""
    return {"template": template, "params": params}


def plain(text: str) -> dict[str, Any]:
    """A message for text that has no template (words stored before templates were kept): shown as it is."""
    return message(text.replace("%", "%%"))


def coded(vocabulary: str, code: Any) -> dict[str, Any]:
    """A param that is a stored code of a vocabulary (a region, a stage): English shows the code, the admin its label."""
    return {"code": code, "of": vocabulary}


def is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("template"), str)


def is_code(value: Any) -> bool:
    return isinstance(value, Mapping) and "code" in value and isinstance(value.get("of"), str)


def render(template: str, params: Mapping[str, Any] | None = None, translate: Translate | None = None,
           label: Label | None = None) -> str:
    """The text of `template` with `params`: English without `translate`, else each part translated first.

    `label(vocabulary, code)` names a coded param for the reader (without it the code is shown).
    A translation whose placeholders do not fit the params falls back to the English text.
    """
    values = {name: _value(value, translate, label) for name, value in (params or {}).items()}
    try:
        return (translate(template) if translate else template) % values
    except (KeyError, ValueError, TypeError):
        if translate is None:
            raise
        return english(template, params)


def english(template: str, params: Mapping[str, Any] | None = None) -> str:
    """The English text of a message: what the CLI, the API and the logs show."""
    return render(template, params)


def _value(value: Any, translate: Translate | None, label: Label | None) -> Any:
    if is_message(value):
        return render(value["template"], value.get("params"), translate, label)
    if is_code(value):
        return label(value["of"], value["code"]) if label else value["code"]
    if isinstance(value, list) and value and all(is_message(v) for v in value):
        separator = translate("; ") if translate else "; "
        return separator.join(_value(v, translate, label) for v in value)
    return value
