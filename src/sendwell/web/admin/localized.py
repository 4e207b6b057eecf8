"""The `localized` and `finding_text` template filters: a message built in code, in the reader's language."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from sendwell.i18n.messages import is_code, is_message, render
from sendwell.web.admin.labels import audience_value


@pass_context
def localized(context: Context, text: Any, template: Any = None, params: Any = None) -> str:
    """`{{ f.message|localized(f.template, f.params) }}`, or `{{ msg|localized }}` for a message dict.

    Without a template the stored English text is shown (rows written before templates were kept).
    """
    if template is None and is_message(text):
        template, params = text["template"], text.get("params")
    if not isinstance(template, str) or not template:
        return str(text)
    translate = context.get("_")
    translate = translate if callable(translate) else None
    language = str(context.get("lang") or "en")

    def label(vocabulary: str, code: Any) -> str:
        named = audience_value(None if code is None else str(code), vocabulary, language)
        return translate(named) if translate else named

    return render(template, params if isinstance(params, Mapping) else {}, translate, label)


# A lint finding's params that are codes a person types (a template variable, a setting's name, a path).
CODE_PARAMS = frozenset({"name", "new", "base", "known", "settings", "path"})
# The part of a campaign a finding names, as the campaign form labels it.
PARTS = {"subject": "Subject", "html": "HTML", "text": "Plain text"}
# In a finding's own words: `code` and setting names read as code; a law's article number is the same in every language.
_IN_TEXT = re.compile(r"`([^`]+)`|\b(SENDWELL_[A-Z_]+)\b|(?<![\w])(_[A-Z][A-Z_]+)\b|(\d+(?:\(\d+\))+(?:\([a-z]\))?)")


def _marked(match: re.Match[str]) -> str:
    code = match.group(1) or match.group(2) or match.group(3)
    placeholder = re.fullmatch(r"%\((\w+)\)[sr]", match.group(1) or "")
    if placeholder and placeholder.group(1) in CODE_PARAMS:
        return match.group(1)  # `%(name)s`: the value is put in <code> itself
    return f"<code>{code}</code>" if code else f'<span translate="no">{match.group(4)}</span>'


def _field(finding: Any, name: str) -> Any:
    return finding.get(name) if isinstance(finding, Mapping) else getattr(finding, name, None)


@pass_context
def finding_text(context: Context, finding: Any) -> Markup:
    """`{{ f|finding_text }}`: a lint finding's message in the reader's language, its codes in <code>.

    A code param drops the quotes of `%(name)r` (the <code> marks it); a translation whose placeholders do
    not fit the params falls back to the English template.
    """
    template, params = _field(finding, "template"), _field(finding, "params") or {}
    if not isinstance(template, str) or not template:
        return escape(_field(finding, "message") or "")
    translate = context.get("_")
    translate = translate if callable(translate) else (lambda text: text)
    values: dict[str, Any] = {}
    for name, value in params.items():
        if is_message(value) or is_code(value):
            value = localized(context, "", "%(v)s", {"v": value})
        if name in CODE_PARAMS:
            values[name] = Markup("<code>%s</code>") % value
        elif name == "part":
            values[name] = translate(PARTS.get(str(value), str(value)))
        else:
            values[name] = value
    for text in (translate(template), template):
        text = re.sub(r"%\((\w+)\)r", lambda m: f"%({m[1]})s" if m[1] in CODE_PARAMS and m[1] in params else m[0], text)
        try:
            return Markup(_IN_TEXT.sub(_marked, str(escape(text)))) % values
        except (KeyError, ValueError, TypeError):
            continue
    return escape(_field(finding, "message") or template)
