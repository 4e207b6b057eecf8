"""The demo's domain step: its own loopback DNS server, the check before and after publishing the fixes."""

from __future__ import annotations

from pathlib import Path

import dns.resolver
import pytest

from sendwell.deliverability.check import Record
from sendwell.delivery import dkim
from sendwell.demo.domain import LoopbackDns, show_domain_check
from sendwell.mail.resolver import make_resolver
from tests.conftest import make_settings


def test_the_demo_server_answers_like_an_authoritative_one() -> None:
    with LoopbackDns({"demo.example": "demo.example. 300 IN MX 10 mail.demo.example.\n"
                                      "a.b.demo.example. 300 IN A 127.0.0.1\n"}) as server:
        resolver = make_resolver(server.address, timeout=2)
        assert [r.to_text() for r in resolver.resolve("demo.example", "MX")] == ["10 mail.demo.example."]
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver.resolve("missing.demo.example", "TXT")
        with pytest.raises(dns.resolver.NoAnswer):  # b.demo.example has a name below it
            resolver.resolve("b.demo.example", "A")
        with pytest.raises(dns.resolver.NoNameservers):  # not its zone: REFUSED
            resolver.resolve("elsewhere.example", "A")
        server.publish(Record("demo.example.", "TXT", '"v=spf1 -all"'))
        assert [r.to_text() for r in resolver.resolve("demo.example", "TXT")] == ['"v=spf1 -all"']


def test_the_demo_step_publishes_what_the_check_asks_for_and_is_then_ready(tmp_path: Path) -> None:
    key = tmp_path / "demo.pem"
    key.write_bytes(dkim.generate_private_key())
    settings = make_settings(tmp_path / "data", dkim_domain="bright-lighting.example", dkim_key_file=str(key),
                             smtp_url="smtp://127.0.0.1:2525")
    lines: list[str] = []
    result = show_domain_check(settings, lines.append)
    assert result["before"] == ["spf-missing", "dkim-missing", "dmarc-missing", "dmarc-alignment"]
    assert result["published"][0] == 'bright-lighting.example. TXT "v=spf1 ip4:127.0.0.1 -all"'
    assert result["after_ok"] and result["after"]["blocking"] == 0 and result["after"]["warning"] == 0
    assert lines[0].startswith("16. Sender domain bright-lighting.example") and "ready for bulk sending" in lines[-1]
