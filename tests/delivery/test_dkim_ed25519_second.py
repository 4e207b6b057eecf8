"""A second Ed25519 DKIM signature next to the RSA one: keygen, record, and both verified by dkimpy."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sendwell.cli.dkim import dkim as dkim_group
from sendwell.config import load_settings
from sendwell.delivery.dkim import MultiSigner, load_signer
from sendwell.mail.mime import build_message

DOMAIN = "bright-lighting.example"


def _run(data_dir, *args):
    env = {"SENDWELL_DATA_DIR": str(data_dir), "SENDWELL_DKIM_DOMAIN": None, "SENDWELL_DKIM_SELECTOR": None,
           "SENDWELL_DKIM_KEY_FILE": None, "SENDWELL_DKIM_ED25519_SELECTOR": None, "SENDWELL_DKIM_ED25519_KEY_FILE": None}
    return CliRunner(env=env).invoke(dkim_group, list(args), catch_exceptions=False)


def test_keygen_ed25519_adds_a_second_signature_that_dkimpy_verifies(tmp_path, monkeypatch, verify, dkimpy_ed25519):
    data = tmp_path / "data"
    for var in ("SENDWELL_DKIM_DOMAIN", "SENDWELL_DKIM_SELECTOR", "SENDWELL_DKIM_KEY_FILE",
                "SENDWELL_DKIM_ED25519_SELECTOR", "SENDWELL_DKIM_ED25519_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert _run(data, "keygen", "--domain", DOMAIN, "--selector", "s2026").exit_code == 0
    result = _run(data, "keygen", "--domain", DOMAIN, "--selector", "ed2026", "--type", "ed25519", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["type"] == "ed25519" and 'k=ed25519' in out["record"]
    record = json.loads(_run(data, "record", "--json").output)
    assert record["ed25519"]["record"] == out["record"] and "k=rsa" in record["record"]

    settings = load_settings(data_dir=data)
    signer = load_signer(settings)
    assert isinstance(signer, MultiSigner)
    assert [s.algorithm for s in signer.signers] == ["rsa-sha256", "ed25519-sha256"]
    message = build_message(
        from_header=f"Ningbo Bright Lighting <sales@{DOMAIN}>", to_name="Anna Müller", to_address="anna@importer.example",
        subject="Neue Panels", text="Hallo", html="<p>Hallo</p>", message_id=f"<1.a@{DOMAIN}>",
        list_unsubscribe=[f"https://mail.{DOMAIN}/u/T", f"mailto:u+T@{DOMAIN}"], list_id=f"n <n.{DOMAIN}>",
        feedback_id=f"1:marketing:{DOMAIN}",
    )
    signed = signer.sign(message) + message
    assert signed.count(b"DKIM-Signature:") == 2
    assert verify(signed, record["record"], record["ed25519"]["record"], idx=0)
    assert verify(signed, record["record"], record["ed25519"]["record"], idx=1)
    # A tampered List-Unsubscribe breaks both (RFC 8058 §4: it is in h= of each).
    tampered = signed.replace(b"https://mail.", b"https://evil.")
    assert not verify(tampered, record["record"], record["ed25519"]["record"], idx=0)
    assert not verify(tampered, record["record"], record["ed25519"]["record"], idx=1)


def test_ed25519_selector_must_differ_and_domain_must_match(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for var in ("SENDWELL_DKIM_DOMAIN", "SENDWELL_DKIM_SELECTOR", "SENDWELL_DKIM_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    _run(data, "keygen", "--domain", DOMAIN, "--selector", "s2026")
    monkeypatch.setenv("SENDWELL_DATA_DIR", str(data))
    r = CliRunner().invoke(dkim_group, ["keygen", "--domain", "other.example", "--selector", "ed", "--type", "ed25519"])
    assert r.exit_code != 0 and "differs from the RSA key's domain" in r.output
    r = CliRunner().invoke(dkim_group, ["keygen", "--domain", DOMAIN, "--selector", "s2026", "--type", "ed25519"])
    assert r.exit_code != 0 and "needs its own DNS record" in r.output
