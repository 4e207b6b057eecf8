"""The test DNS server (tests/dnsserver.py): real NSD answering the zones it is given, on loopback."""

from __future__ import annotations

import dns.resolver
import pytest

from sendwell.mail.resolver import make_resolver
from tests.dnsserver import dns_server, needs_nsd

pytestmark = [pytest.mark.slow, needs_nsd]


def test_serves_the_given_zones_on_a_loopback_port() -> None:
    zones = {
        "good.example": '@ TXT "v=spf1 ip4:192.0.2.10 -all"\n@ MX 10 mx\nmx A 192.0.2.25\n',
        "other.example": "@ MX 5 mx.good.example.\n",
    }
    with dns_server(zones) as address:
        assert address.startswith("127.0.0.1:")
        resolver = make_resolver(address, timeout=3)
        assert [r.to_text() for r in resolver.resolve("good.example", "TXT")] == ['"v=spf1 ip4:192.0.2.10 -all"']
        assert [r.to_text() for r in resolver.resolve("good.example", "MX")] == ["10 mx.good.example."]
        assert [r.to_text() for r in resolver.resolve("mx.good.example", "A")] == ["192.0.2.25"]
        assert [r.to_text() for r in resolver.resolve("other.example", "MX")] == ["5 mx.good.example."]
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver.resolve("missing.good.example", "TXT")


def test_the_fixture_stops_the_server_after_use(dns_zones) -> None:
    address = dns_zones({"gone.example": '@ TXT "here"\n'})
    resolver = make_resolver(address, timeout=3)
    assert [r.to_text() for r in resolver.resolve("gone.example", "TXT")] == ['"here"']


def test_a_bad_zone_fails_with_nsd_s_message() -> None:
    with pytest.raises(ValueError, match="bad.example"):
        with dns_server({"bad.example": "@ MX not-a-number\n"}):
            pass


def test_the_server_is_gone_after_the_block() -> None:
    with dns_server({"short.example": '@ TXT "x"\n'}) as address:
        pass
    resolver = make_resolver(address, timeout=1)
    with pytest.raises((dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout)):
        resolver.resolve("short.example", "TXT")
