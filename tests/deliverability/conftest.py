"""Fixtures of the sender-domain tests: a DKIM key pair and the real DNS server of tests/dnsserver.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sendwell.delivery import dkim
from tests.deliverability.zones import domain_zones

# A fixture: pytest finds it by name in this module.
from tests.dnsserver import (
    dns_server,
    dns_zones,  # noqa: F401
)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes]:
    """(the signing key's file, its PEM, another key's PEM) — the other one for the mismatch zone."""
    key, other = dkim.generate_private_key(), dkim.generate_private_key()
    path = tmp_path_factory.mktemp("dkim") / "sendwell.pem"
    path.write_bytes(key)
    return path, key, other


@pytest.fixture(scope="session")
def dns(keys: tuple[Path, bytes, bytes]) -> Iterator[str]:
    """NSD serving the good and broken zones of zones.py: "127.0.0.1:PORT"."""
    with dns_server(domain_zones(keys[1], keys[2])) as address:
        yield address
