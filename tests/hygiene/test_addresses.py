"""Address cleaning rules, without a database: syntax and IDNA, role, disposable, typo suggestions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendwell.contacts.addresses import (
    COMMON_DOMAINS,
    check_address,
    disposable_domains,
    suggest_domain,
    suggest_domain_difflib,
)
from sendwell.contacts.roles import ROLE_ADDRESSES

ROLES = frozenset(ROLE_ADDRESSES.split(","))


@pytest.mark.parametrize(("domain", "suggestion"), [
    ("gmial.com", "gmail.com"), ("gmail.con", "gmail.com"), ("hotmial.com", "hotmail.com"),
    ("yaho.com", "yahoo.com"), ("outlok.com", "outlook.com"), ("163.con", "163.com"), ("GMIAL.COM", "gmail.com"),
    # Real domains are left alone, look-alike providers included.
    ("gmail.com", None), ("mail.com", None), ("me.com", None), ("acme.com", None), ("lichthaus-berlin.de", None),
])
def test_typo_suggestions(domain, suggestion) -> None:
    assert suggest_domain(domain) == suggestion


def test_notes_per_address() -> None:
    assert check_address("anna@lamps.example", roles=ROLES) == []
    assert [n.flag for n in check_address("Info@lamps.example", roles=ROLES)] == ["role_address"]
    assert [n.flag for n in check_address("sales+eu@lamps.example", roles=ROLES)] == ["role_address"]
    assert [n.flag for n in check_address("x@inbox.mailinator.com", roles=ROLES)] == ["disposable"]
    assert [n.flag for n in check_address("info@gmial.com", roles=ROLES)] == ["role_address", "typo_suspected"]
    assert check_address("müller@bücher.example", roles=ROLES) == []  # IDNA is fine
    [bad] = check_address("anna@@lamps.example", roles=ROLES)
    assert bad.flag == "invalid" and "@" in bad.detail
    assert check_address("anna@xn--.example", roles=ROLES)[0].flag == "invalid"


def test_the_bundled_disposable_list_is_clean() -> None:
    domains = disposable_domains()
    assert "mailinator.com" in domains and len(domains) > 30
    assert all(d == d.strip().lower() and "." in d and " " not in d for d in domains)
    assert not domains & {"gmail.com", "outlook.com", "qq.com", "163.com"}


_DOMAIN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-"


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.text(_DOMAIN_CHARS, min_size=1, max_size=20),
    # Slips of the keyboard on the listed providers: the cases the prefilter must not lose.
    st.builds(lambda name, i, c, how: (name[:i] + c + name[i:], name[:i] + name[i + 1:],
                                       name[:i] + c + name[i + 1:], name[:i] + name[i + 1:i + 2] + name[i:i + 1]
                                       + name[i + 2:])[how],
              st.sampled_from(COMMON_DOMAINS), st.integers(0, 13), st.sampled_from(_DOMAIN_CHARS), st.integers(0, 3)),
))
def test_the_prefiltered_typo_check_agrees_with_difflib_alone(domain) -> None:
    assert suggest_domain(domain) == suggest_domain_difflib(domain)
