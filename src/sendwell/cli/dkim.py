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
@click.option("--force", is_flag=True, help="Replace an existing key file.")
@json_option
def keygen(domain: str, selector: str, bits: int, force: bool, as_json: bool) -> None:
    """Create an RSA key, configure it, and print the DNS TXT record to publish."""
    settings = get_settings()
    domain = domain.strip().rstrip(".").lower()
    if not _DNS_NAME.match(domain) or "." not in domain:
        fail(f"--domain {domain!r} is not a domain name")
    if not _DNS_NAME.match(selector):
        fail(f"--selector {selector!r} is not a DNS label (letters, digits, -, _ and dots)")
    if bits < MIN_RSA_BITS:
        fail(f"--bits {bits} is too small: mailbox providers reject DKIM keys under {MIN_RSA_BITS} bits; use 2048")
    path = (settings.data_dir / "dkim" / f"{selector}.{domain}.pem").resolve()
    if path.exists() and not force:
        fail(f"{path} already exists; pass --force to replace it")
    pem = generate_private_key("rsa", bits)
    _write_private(path, pem)
    write_config_values(
        settings.config_file,
        {"dkim_domain": domain, "dkim_selector": selector, "dkim_key_file": str(path)},
    )
    # Environment wins over the config file, so a stale variable would hide the new key.
    for var, value in (("SENDWELL_DKIM_DOMAIN", domain), ("SENDWELL_DKIM_SELECTOR", selector), ("SENDWELL_DKIM_KEY_FILE", str(path))):
        if os.environ.get(var) not in (None, value):
            echo_err(f"warning: {var} is set in the environment and overrides the new value {value!r}")
    record = dns_record(domain=domain, selector=selector, private_key_pem=pem)
    emit(
        {"domain": domain, "selector": selector, "key_file": str(path), "record": record},
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
    text = signer.dns_record()
    emit(
        {"domain": signer.domain, "selector": signer.selector, "key_file": str(key_path(settings)), "record": text},
        as_json,
        text,
    )


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
