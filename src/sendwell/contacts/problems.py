"""A problem with one value, said as a message template and its parameters so the admin can translate it."""

from __future__ import annotations

from typing import Any


class FieldProblem(ValueError):
    """A value that cannot be used: `template % params` is the English message."""

    def __init__(self, template: str, **params: Any) -> None:
        super().__init__(template % params if params else template)
        self.template = template
        self.params = params


# email-validator says why an address is not valid in English sentences of its own; the admin shows one of
# these reasons instead, in the reader's language. The first entry one of whose phrases the sentence holds wins.
_NOT_A_DOMAIN = "%(value)s is not a valid address: the part after the @ sign is not a valid domain."
_ADDRESS_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("must have an @-sign", "instead of a regular at-sign"), "%(value)s is not a valid address: it has no @ sign."),
    (("something before the @-sign",), "%(value)s is not a valid address: nothing comes before the @ sign."),
    (("something after the @-sign",), "%(value)s is not a valid address: nothing comes after the @ sign."),
    (("too long", "so many characters"), "%(value)s is not a valid address: it is too long."),
    (("should have a period", "top-level domain", "special-use or reserved"), _NOT_A_DOMAIN),
    (("period", "hyphen"), "%(value)s is not a valid address: a dot or a hyphen is in the wrong place."),
    (("before the @-sign",), "%(value)s is not a valid address: the part before the @ sign has characters "
                             "that are not allowed."),
    (("after the @-sign", "IDNA"), _NOT_A_DOMAIN),
)


def address_problem(value: str, reason: str) -> FieldProblem:
    """Why `value` (as shown, quoted) is not an address: email-validator's `reason` as one of a few templates.

    A reason none of them covers is quoted as the library says it.
    """
    for phrases, template in _ADDRESS_REASONS:
        if any(phrase in reason for phrase in phrases):
            return FieldProblem(template, value=value)
    return FieldProblem("%(value)s is not a valid address: %(reason)s", value=value, reason=reason)
