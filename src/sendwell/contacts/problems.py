"""A problem with one value, said as a message template and its parameters so the admin can translate it."""

from __future__ import annotations

from typing import Any


class FieldProblem(ValueError):
    """A value that cannot be used: `template % params` is the English message."""

    def __init__(self, template: str, **params: Any) -> None:
        super().__init__(template % params if params else template)
        self.template = template
        self.params = params
