"""The `localized` template filter: a message built in code, in the reader's language."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from sendwell.i18n.messages import is_message, render
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
