"""The `localized` template filter: a message built in code, in the reader's language."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from sendwell.i18n.messages import render


@pass_context
def localized(context: Context, text: str, template: Any = None, params: Any = None) -> str:
    """`{{ f.message|localized(f.template, f.params) }}`: the stored English text when there is no template
    (rows written before templates were kept)."""
    if not isinstance(template, str) or not template:
        return text
    translate = context.get("_")
    return render(template, params if isinstance(params, Mapping) else {},
                  translate if callable(translate) else None)
