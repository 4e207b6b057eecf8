"""Address cleaning rules, without a database: syntax and IDNA, role, disposable, typo suggestions."""

from __future__ import annotations

import pytest

from sendwell.hygiene.addresses import ROLE_ADDRESSES, check_address, disposable_domains, suggest_domain

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
