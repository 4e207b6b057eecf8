"""Provider groups from real MX answers: a local NSD server (tests/dnsserver.py) serves the zones."""

from __future__ import annotations

import pytest

from sendwell.db.models import ProviderMx
from sendwell.db.session import transaction
from sendwell.delivery.providers import OTHER, ProviderGroups
from tests.conftest import make_settings
from tests.dnsserver import dns_server, free_port, needs_nsd

pytestmark = [pytest.mark.slow, needs_nsd]

ZONES = {
    "workspace-buyer.example": "@ MX 1 aspmx.l.google.com.\n@ MX 5 alt1.aspmx.l.google.com.",
    "m365-buyer.example": "@ MX 0 m365-buyer-example.mail.protection.outlook.com.",
    "exmail-buyer.example": "@ MX 5 mxbiz1.qq.com.\n@ MX 10 mxbiz2.qq.com.",
    "aliyun-buyer.example": "@ MX 5 mxw.mxhichina.com.",
    "own-server.example": "@ MX 10 mail.own-server.example.\nmail A 192.0.2.10",
    "acme-hosted.example": "@ MX 10 mx2.acme-mail.example.",
    "no-mx.example": "@ A 192.0.2.20",
}


def test_groups_come_from_the_mx_records_served_and_are_stored(tmp_path, runtime) -> None:
    with dns_server(ZONES) as address:
        settings = make_settings(tmp_path / "d", database_url=runtime.settings.database_url, dns_nameservers=address,
                                 provider_groups="acme=mx*.acme-mail.example")
        groups = ProviderGroups.from_settings(settings, runtime.factory)
        found = {domain: groups.group_for(f"buyer@{domain}") for domain in ZONES}
        missing = groups.group_for("nobody@missing.workspace-buyer.example")  # NXDOMAIN
    assert found == {
        "workspace-buyer.example": "google", "m365-buyer.example": "microsoft", "exmail-buyer.example": "qq",
        "aliyun-buyer.example": "alibaba", "own-server.example": OTHER, "acme-hosted.example": "acme",
        "no-mx.example": OTHER,
    }
    assert missing == OTHER
    with transaction(runtime.factory) as s:
        stored = {row.domain: row.mx_hosts for row in s.query(ProviderMx)}
    assert stored["workspace-buyer.example"] == "aspmx.l.google.com alt1.aspmx.l.google.com"
    assert stored["no-mx.example"] == "" and "missing.workspace-buyer.example" in stored


def test_a_dns_server_that_does_not_answer_never_blocks_the_mail(tmp_path) -> None:
    # Nothing listens on this port: every lookup times out, and the domain is grouped by name only.
    settings = make_settings(tmp_path, dns_nameservers=f"127.0.0.1:{free_port()}", dns_timeout=0.5)
    groups = ProviderGroups.from_settings(settings)
    assert groups.group_for("buyer@workspace-buyer.example") == OTHER
    assert groups.group_for("someone@gmail.com") == "google"  # by name: no lookup
