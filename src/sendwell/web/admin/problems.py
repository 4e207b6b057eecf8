"""An error raised in code as a message for the admin: its template and params, shown with the `localized` filter."""

from __future__ import annotations

from typing import Any

from sendwell.i18n.messages import message, plain


def said(exc: BaseException) -> dict[str, Any]:
    """What the error says, as a message: translated when it carries a template, else its English text as it is."""
    template, params = getattr(exc, "template", None), getattr(exc, "params", None)
    if isinstance(template, str) and isinstance(params, dict):
        return message(template, **params)
    return plain(str(exc))
