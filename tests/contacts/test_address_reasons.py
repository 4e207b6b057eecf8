"""Why an address is not valid, said as one of a few templates the admin translates (not email-validator's English)."""

from __future__ import annotations

import pytest

from sendwell.contacts.fields import normalise_email_slow
from sendwell.contacts.problems import address_problem
from sendwell.i18n import translations


def reason_for(address: str) -> str:
    with pytest.raises(ValueError) as raised:
        normalise_email_slow(address)
    return str(raised.value)


@pytest.mark.parametrize(("address", "says"), [
    ("not-an-address", "it has no @ sign."),
    ("anna＠licht.example", "it has no @ sign."),
    ("@licht.example", "nothing comes before the @ sign."),
    ("anna@", "nothing comes after the @ sign."),
    ("a" * 300 + "@licht.example", "it is too long."),
    ("anna..m@licht.example", "a dot or a hyphen is in the wrong place."),
    ("an na@licht.example", "the part before the @ sign has characters that are not allowed."),
    ("anna@licht", "the part after the @ sign is not a valid domain."),
    ("anna@licht_haus.example", "the part after the @ sign is not a valid domain."),
])
def test_each_reason_of_email_validator_becomes_a_template_read_in_chinese(address: str, says: str) -> None:
    problem = address_problem(repr(address), reason_for(address))
    assert problem.template == "%(value)s is not a valid address: " + says
    assert str(problem) == f"{address!r} is not a valid address: {says}"
    chinese = translations("zh_Hans", "admin").gettext(problem.template) % problem.params
    assert chinese.startswith(f"{address!r} 不是有效的邮箱地址：") and not chinese.isascii()


def test_a_reason_no_template_covers_is_quoted_as_the_library_says_it() -> None:
    problem = address_problem("'x'", "Something new went wrong.")
    assert str(problem) == "'x' is not a valid address: Something new went wrong."
