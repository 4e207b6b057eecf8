"""`sendwell domain check` and GET /api/v1/domain/check against the real test DNS server."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from sendwell.access.service import create_token
from sendwell.cli.main import cli, register_commands
from sendwell.db.models import DomainCheck
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.deliverability.zones import SENDING_IP, domain_settings
from tests.dnsserver import free_port, needs_nsd

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

register_commands()
pytestmark = [pytest.mark.slow, needs_nsd]


def env_for(tmp_path: Path, dns: str, keys: Any, domain: str = "good.example") -> dict[str, str]:
    return {"SENDWELL_DATA_DIR": str(tmp_path / "data"), "SENDWELL_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER,
            "SENDWELL_FROM": f"Sales <sales@{domain}>", "SENDWELL_DKIM_DOMAIN": domain,
            "SENDWELL_DKIM_KEY_FILE": str(keys[0]), "SENDWELL_DNS_NAMESERVERS": dns, "SENDWELL_DNS_TIMEOUT": "2",
            "SENDWELL_SENDING_IPS": SENDING_IP, "SENDWELL_SMTP_URL": "smtp://127.0.0.1:2525"}


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def test_cli_exit_0_for_a_ready_domain_and_the_result_is_stored(tmp_path: Path, dns: str, keys: Any) -> None:
    env = env_for(tmp_path, dns, keys)
    assert run(env, "migrate").exit_code == 0
    result = run(env, "domain", "check")
    assert result.exit_code == 0, result.output
    assert "Sender domain good.example" in result.output and "ready for bulk sending" in result.output
    assert "pass     dmarc-alignment" in result.output
    as_json = run(env, "domain", "check", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.output)["ok"] is True
    rt = Runtime(domain_settings(tmp_path, dns, "good.example", keys[0], database_url=env["SENDWELL_DATABASE_URL"]))
    try:
        with transaction(rt.factory) as s:
            assert [r.domain for r in s.scalars(select(DomainCheck))] == ["good.example"]
    finally:
        rt.dispose()


def test_cli_exit_1_and_the_records_to_publish(tmp_path: Path, dns: str, keys: Any) -> None:
    env = env_for(tmp_path, dns, keys, "nothing.example")  # no database: the check needs none
    result = run(env, "domain", "check")
    assert result.exit_code == 1, result.output
    assert f'publish: nothing.example. TXT "v=spf1 ip4:{SENDING_IP} -all"' in result.output
    assert 'publish: _dmarc.nothing.example. TXT "v=DMARC1; p=none; rua=mailto:dmarc@nothing.example"' in result.output
    assert "publish: sendwell._domainkey.nothing.example. TXT \"v=DKIM1; k=rsa; p=" in result.output
    other = run(env_for(tmp_path, dns, keys), "domain", "check", "--domain", "nodmarc.example", "--json")
    assert other.exit_code == 1
    assert "dmarc-missing" in [f["id"] for f in json.loads(other.output)["findings"]]


def test_cli_usage_errors_and_dns_outage(tmp_path: Path, dns: str, keys: Any) -> None:
    env = env_for(tmp_path, dns, keys)
    assert run(env, "domain", "check", "--domain", "not a domain").exit_code == 2
    bad_ips = run({**env, "SENDWELL_SENDING_IPS": "192.0.2.10,mail.example"}, "domain", "check")
    assert bad_ips.exit_code == 1 and "'mail.example' is not an IP address" in bad_ips.output
    down = run({**env, "SENDWELL_DNS_NAMESERVERS": f"127.0.0.1:{free_port()}", "SENDWELL_DNS_TIMEOUT": "1"},
               "domain", "check")
    assert down.exit_code == 75, down.output
    assert "dns-unreachable" in down.output and "incomplete" in down.output


def test_api_domain_check(tmp_path: Path, db_url: str, dns: str, keys: Any) -> None:
    rt = Runtime(domain_settings(tmp_path, dns, "good.example", keys[0], database_url=db_url))
    try:
        with transaction(rt.factory) as s:
            reader = {"Authorization": f"Bearer {create_token(s, name='r', scopes=['reports:read']).secret}"}
            other = {"Authorization": f"Bearer {create_token(s, name='c', scopes=['contacts:read']).secret}"}
        with TestClient(create_app(rt, outbox=False)) as client:
            good = client.get("/api/v1/domain/check", headers=reader)
            assert good.status_code == 200, good.text
            assert good.json()["ok"] is True and good.json()["domain"] == "good.example"
            assert client.get("/api/v1/domain/check", headers=other).status_code == 403
            bad = client.get("/api/v1/domain/check", params={"domain": "nospf.example", "fresh": "true"},
                             headers=reader)
            body = bad.json()
            assert bad.status_code == 200 and body["ok"] is False
            spf = next(f for f in body["findings"] if f["id"] == "spf-missing")
            assert spf["severity"] == "blocking"
            assert spf["fix"] == {"name": "nospf.example.", "type": "TXT", "value": f'"v=spf1 ip4:{SENDING_IP} -all"'}
            invalid = client.get("/api/v1/domain/check", params={"domain": "no spaces.example"}, headers=reader)
            assert invalid.status_code == 422
    finally:
        rt.dispose()


def test_campaigns_send_prints_the_gate_s_findings_and_exits_1(tmp_path: Path, dns: str, keys: Any) -> None:
    env = {**env_for(tmp_path, dns, keys, "nothing.example"), "SENDWELL_BULK_THRESHOLD": "0"}
    assert run(env, "migrate").exit_code == 0
    html = tmp_path / "mail.html"
    html.write_text("<p>Hello {{ contact.first_name }}</p>")
    made = run(env, "campaigns", "create", "--name", "Spring", "--subject", "New lamps", "--html", str(html), "--json")
    assert made.exit_code == 0, made.output
    campaign_id = str(json.loads(made.output)["id"])
    sent = run(env, "campaigns", "send", campaign_id)
    assert sent.exit_code == 1, sent.output
    assert "sender-domain-spf-missing" in sent.output
    assert f'Publish: nothing.example. TXT "v=spf1 ip4:{SENDING_IP} -all"' in sent.output
    scheduled = run(env, "campaigns", "schedule", campaign_id, "--at", "2030-01-01T09:00Z", "--json")
    assert scheduled.exit_code == 1 and json.loads(scheduled.output)["errors"] >= 4
