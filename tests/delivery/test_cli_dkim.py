"""`sendwell dkim keygen` and `sendwell dkim record` on a temporary data folder."""

from __future__ import annotations

import json
import re
import stat

import pytest
from click.testing import CliRunner

from sendwell.cli.dkim import dkim as dkim_group
from sendwell.config import load_settings, read_config_file
from sendwell.delivery.dkim import dns_record, key_bits, load_signer

DOMAIN = "bright-lighting.example"


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def run(data_dir):
    """Invoke `sendwell dkim ...` with only SENDWELL_DATA_DIR set among the DKIM settings."""
    env = {
        "SENDWELL_DATA_DIR": str(data_dir),
        "SENDWELL_DKIM_DOMAIN": None,
        "SENDWELL_DKIM_SELECTOR": None,
        "SENDWELL_DKIM_KEY_FILE": None,
    }

    def _run(*args: str, **extra_env: str):
        return CliRunner(env={**env, **extra_env}).invoke(dkim_group, list(args), catch_exceptions=False)

    return _run


def test_keygen_writes_key_and_config_and_prints_record(run, data_dir):
    result = run("keygen", "--domain", DOMAIN, "--selector", "sw2026")
    assert result.exit_code == 0, result.output
    key_file = (data_dir / "dkim" / f"sw2026.{DOMAIN}.pem").resolve()
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = key_file.read_bytes()
    assert key_bits(pem) == 2048
    record = dns_record(domain=DOMAIN, selector="sw2026", private_key_pem=pem)
    assert record in result.output.splitlines()
    assert record.startswith(f'sw2026._domainkey.{DOMAIN}. TXT "v=DKIM1; k=rsa; p=')

    config = (data_dir / "sendwell.env").read_text()
    assert f"SENDWELL_DKIM_DOMAIN={DOMAIN}" in config.splitlines()
    assert "SENDWELL_DKIM_SELECTOR=sw2026" in config.splitlines()
    assert f"SENDWELL_DKIM_KEY_FILE={key_file}" in config.splitlines()
    assert list(key_file.parent.iterdir()) == [key_file]  # no temp file left behind


def test_keygen_keeps_other_config_lines(run, data_dir):
    data_dir.mkdir()
    (data_dir / "sendwell.env").write_text("SENDWELL_SECRET_KEY=abc\nSENDWELL_DKIM_SELECTOR=old\n")
    assert run("keygen", "--domain", DOMAIN, "--selector", "new", "--bits", "1024").exit_code == 0
    values = read_config_file(data_dir / "sendwell.env")
    assert values["secret_key"] == "abc" and values["dkim_selector"] == "new"


def test_keygen_json(run, data_dir):
    result = run("keygen", "--domain", DOMAIN, "--selector", "s1", "--bits", "1024", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"domain", "selector", "type", "key_file", "record"}
    assert data["domain"] == DOMAIN and data["selector"] == "s1"
    pem = open(data["key_file"], "rb").read()
    assert data["record"] == dns_record(domain=DOMAIN, selector="s1", private_key_pem=pem)


def test_keygen_refuses_to_overwrite_without_force(run, data_dir):
    assert run("keygen", "--domain", DOMAIN, "--selector", "s1", "--bits", "1024").exit_code == 0
    key_file = data_dir / "dkim" / f"s1.{DOMAIN}.pem"
    first = key_file.read_bytes()

    again = run("keygen", "--domain", DOMAIN, "--selector", "s1", "--bits", "1024")
    assert again.exit_code != 0
    assert "--force" in again.output and len(again.output.strip().splitlines()) == 1
    assert key_file.read_bytes() == first

    forced = run("keygen", "--domain", DOMAIN, "--selector", "s1", "--bits", "1024", "--force")
    assert forced.exit_code == 0, forced.output
    assert key_file.read_bytes() != first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--domain", DOMAIN, "--selector", "s1", "--bits", "512"], "--bits 512"),
        (["--domain", "../../etc", "--selector", "s1"], "--domain"),
        (["--domain", DOMAIN, "--selector", "a/b"], "--selector"),
    ],
)
def test_keygen_rejects_bad_input(run, data_dir, args, needle):
    result = run("keygen", *args)
    assert result.exit_code != 0
    assert needle in result.output and len(result.output.strip().splitlines()) == 1
    assert not (data_dir / "dkim").exists()


def test_record_prints_configured_key(run, data_dir):
    made = json.loads(run("keygen", "--domain", DOMAIN, "--selector", "sw2026", "--json").output)
    result = run("record")
    assert result.exit_code == 0, result.output
    assert result.output == made["record"] + "\n"
    assert re.fullmatch(
        rf'sw2026\._domainkey\.{re.escape(DOMAIN)}\. TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+"( "[A-Za-z0-9+/=]+")+\n',
        result.output,
    )
    as_json = json.loads(run("record", "--json").output)
    assert as_json == made


def test_record_without_key_fails_with_one_line(run):
    result = run("record")
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "no DKIM key configured" in lines[0]


def test_record_with_missing_key_file_names_it(run, tmp_path):
    missing = tmp_path / "gone.pem"
    result = run("record", SENDWELL_DKIM_DOMAIN=DOMAIN, SENDWELL_DKIM_KEY_FILE=str(missing))
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0]


def test_generated_key_signs_mail_that_verifies_against_printed_record(run, data_dir, monkeypatch, verify):
    record = json.loads(run("keygen", "--domain", DOMAIN, "--selector", "sw2026", "--json").output)["record"]
    monkeypatch.setenv("SENDWELL_DATA_DIR", str(data_dir))
    for var in ("SENDWELL_DKIM_DOMAIN", "SENDWELL_DKIM_SELECTOR", "SENDWELL_DKIM_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    signer = load_signer(load_settings())  # picks the key up from the config file
    assert signer is not None
    message = (
        f"From: Sales <sales@{DOMAIN}>\r\nTo: b@importer.example\r\nSubject: Hi\r\n"
        "List-Unsubscribe: <https://x.example/u/t>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nHi\r\n"
    ).encode()
    assert verify(signer.sign(message) + message, record)
