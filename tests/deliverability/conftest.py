"""Fixtures of the sender-domain tests: the real DNS server of tests/dnsserver.py."""

from tests.dnsserver import dns_zones  # noqa: F401 (a fixture, found by name)
