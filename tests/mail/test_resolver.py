"""SENDWELL_DNS_NAMESERVERS parsing and the resolver built from it."""

from __future__ import annotations

import pytest

from sendwell.mail.resolver import NameserverError, make_resolver, parse_nameservers


def test_parses_addresses_with_and_without_ports() -> None:
    assert parse_nameservers("127.0.0.1:5353, ::1, [::1]:5300,") == [("127.0.0.1", 5353), ("::1", 53), ("::1", 5300)]


@pytest.mark.parametrize("text", ["ns.example", "127.0.0.1:0", "127.0.0.1:dns", "[::1]5300", "127.0.0.1:70000"])
def test_refuses_what_is_not_an_address_and_port(text: str) -> None:
    with pytest.raises(NameserverError, match="nameserver"):
        parse_nameservers(text)


def test_resolver_asks_the_given_servers_on_their_ports() -> None:
    resolver = make_resolver("127.0.0.1:5353,[::1]:5300", timeout=3.0)
    assert [(n.address, n.port) for n in resolver.nameservers] == [("127.0.0.1", 5353), ("::1", 5300)]
    assert resolver.lifetime == 3.0
