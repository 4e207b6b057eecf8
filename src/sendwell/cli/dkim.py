"""`sendwell dkim`: generate the DKIM key and print its DNS record."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from sendwell.cli.common import echo_err, emit, fail, get_settings, json_option
from sendwell.config import write_config_values
from sendwell.delivery.dkim import MIN_RSA_BITS, dns_record, generate_private_key, key_path, load_signer

# Domain and selector become part of a file name and a DNS name: letters, digits, -, _ and dots only.
_DNS_NAME = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*$")


@click.group()
def dkim() -> None:
    """DKIM keys and DNS records (RFC 6376)."""


@dkim.command()
@click.option("--domain", required=True, help="Signing domain (d=), normally the From domain.")
@click.option("--selector", required=True, help="Selector (s=): the DNS name is S._domainkey.D.")
@click.option("--bits", default=2048, show_default=True, type=int, help="RSA key size.")
@click.option("--type", "key_type", default="rsa", show_default=True, type=click.Choice(["rsa", "ed25519"]),
              help="rsa: the main key; ed25519: a second signature next to the RSA one (RFC 8463).")
@click.option("--force", is_flag=True, help="Replace an existing key file.")
@json_option
def keygen(domain: str, selector: str, bits: int, key_type: str, force: bool, as_json: bool) -> None:
    """Create a DKIM key, configure it, and print the DNS TXT record to publish."""
    settings = get_settings()
    domain = domain.strip().rstrip(".").lower()
    if not _DNS_NAME.match(domain) or "." not in domain:
        fail(f"--domain {domain!r} is not a domain name")
    if not _DNS_NAME.match(selector):
        fail(f"--selector {selector!r} is not a DNS label (letters, digits, -, _ and dots)")
    if key_type == "rsa" and bits < MIN_RSA_BITS:
        fail(f"--bits {bits} is too small: mailbox providers reject DKIM keys under {MIN_RSA_BITS} bits; use 2048")
    if key_type == "ed25519":
        if settings.dkim_domain and settings.dkim_domain.rstrip(".").lower() != domain:
            fail(f"--domain {domain} differs from the RSA key's domain {settings.dkim_domain}: both signatures use one d=")
        if selector == settings.dkim_selector:
            fail(f"--selector {selector} is the RSA key's selector; the Ed25519 key needs its own DNS record")
    suffix = ".ed25519.pem" if key_type == "ed25519" else ".pem"
    path = (settings.data_dir / "dkim" / f"{selector}.{domain}{suffix}").resolve()
    if path.exists() and not force:
        fail(f"{path} already exists; pass --force to replace it")
    pem = generate_private_key(key_type, bits)
    _write_private(path, pem)
    if key_type == "ed25519":
        values = {"dkim_domain": domain, "dkim_ed25519_selector": selector, "dkim_ed25519_key_file": str(path)}
    else:
        values = {"dkim_domain": domain, "dkim_selector": selector, "dkim_key_file": str(path)}
    write_config_values(settings.config_file, values)
    # Environment wins over the config file, so a stale variable would hide the new key.
    for var, value in ((f"SENDWELL_{k.upper()}", v) for k, v in values.items()):
        if os.environ.get(var) not in (None, value):
            echo_err(f"warning: {var} is set in the environment and overrides the new value {value!r}")
    record = dns_record(domain=domain, selector=selector, private_key_pem=pem)
    emit(
        {"domain": domain, "selector": selector, "type": key_type, "key_file": str(path), "record": record},
        as_json,
        f"Wrote {path}\nPublish this DNS record:\n{record}",
    )


@dkim.command()
@json_option
def record(as_json: bool) -> None:
    """Print the DNS TXT record of the configured DKIM key."""
    settings = get_settings()
    try:
        signer = load_signer(settings)
    except ValueError as exc:
        fail(str(exc))
    if signer is None:
        fail("no DKIM key configured (SENDWELL_DKIM_DOMAIN / SENDWELL_DKIM_KEY_FILE): run `sendwell dkim keygen --domain D --selector S`")
    signers = getattr(signer, "signers", (signer,))
    text = signers[0].dns_record()
    result = {"domain": signers[0].domain, "selector": signers[0].selector,
              "type": signers[0].algorithm.split("-")[0], "key_file": str(key_path(settings)), "record": text}
    if len(signers) > 1:
        # The second (Ed25519) record is published next to the RSA one.
        result["ed25519"] = {"selector": signers[1].selector, "key_file": settings.dkim_ed25519_key_file,
                             "record": signers[1].dns_record()}
        text += "\n" + result["ed25519"]["record"]
    emit(result, as_json, text)


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically, readable by the owner only (0600) from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply when the temp file already existed
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
