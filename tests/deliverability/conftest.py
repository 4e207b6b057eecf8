"""Fixtures of the sender-domain tests: the real DNS server of tests/dnsserver.py."""

# A fixture: pytest finds it by name in this module.
from tests.dnsserver import dns_zones  # noqa: F401
