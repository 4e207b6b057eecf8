"""One set of keys per installation: fingerprints of the secret key, pepper and DKIM key, kept in the database."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import delete, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db.models import InstallationKey
from sendwell.delivery import dkim

# What each fingerprint is called in an error message.
LABELS = {"secret_key": "secret key", "hash_pepper": "pepper", "dkim": "DKIM"}


class KeyMismatch(RuntimeError):
    """This process's keys are not the ones the installation's database recorded."""


def fingerprint(kind: str, value: bytes) -> str:
    """First 16 hex digits of SHA-256 over a domain-separated input: names the key, reveals nothing of it."""
    return hashlib.sha256(b"sendwell key fingerprint\x00" + kind.encode() + b"\x00" + value).hexdigest()[:16]


def _dkim_public_keys(settings: Settings) -> bytes:
    """Selector and public key of each configured DKIM key, one per line ("" without DKIM)."""
    if not (settings.dkim_domain and settings.dkim_key_file):
        return b""
    pairs = [(settings.dkim_selector, Path(settings.dkim_key_file).expanduser())]
    if settings.dkim_ed25519_key_file:
        pairs.append((settings.dkim_ed25519_selector or f"{settings.dkim_selector}-ed",
                      Path(settings.dkim_ed25519_key_file).expanduser()))
    lines = [f"{settings.dkim_domain} {selector} {dkim.public_key_b64(path.read_bytes())}" for selector, path in pairs]
    return "\n".join(lines).encode()


def local_fingerprints(settings: Settings) -> dict[str, str]:
    """Fingerprints of the newest secret key, the pepper and the DKIM public key(s) of these settings.

    A secret key or pepper that is not configured has none (its use fails later, as it always has).
    """
    fingerprints = {}
    if settings.secret_key.strip(", "):
        fingerprints["secret_key"] = fingerprint("secret_key", settings.secret_keys[-1].encode())
    if settings.hash_pepper:
        fingerprints["hash_pepper"] = fingerprint("hash_pepper", settings.pepper)
    fingerprints["dkim"] = fingerprint("dkim", _dkim_public_keys(settings))
    return fingerprints


def recorded_fingerprints(engine: Engine) -> dict[str, str]:
    """The installation's fingerprints ({} before they are recorded, or before the table exists)."""
    if not inspect(engine).has_table(InstallationKey.__tablename__):
        return {}
    with Session(engine) as session:
        return {row.name: row.fingerprint for row in session.scalars(select(InstallationKey))}


def record_fingerprints(engine: Engine, settings: Settings, *, replace: bool = False) -> bool:
    """Record these settings' fingerprints when the database has none yet (or always, with `replace`); True when it did."""
    with Session(engine) as session, session.begin():
        if replace:
            session.execute(delete(InstallationKey))
        elif session.scalars(select(InstallationKey)).first() is not None:
            return False
        session.add_all(InstallationKey(name=name, fingerprint=value)
                        for name, value in local_fingerprints(settings).items())
    return True


def differing(settings: Settings, recorded: dict[str, str]) -> list[str]:
    """Labels of the keys whose fingerprints differ (keys the database has not recorded are not compared).

    The recorded secret key may be any of this process's keys, not only its newest: a
    rotation adds the new key in front of the recorded one, and every process still reads
    tokens signed with the recorded key.
    """
    local = local_fingerprints(settings)
    local_secrets = {fingerprint("secret_key", key.strip().encode()) for key in settings.secret_key.split(",") if key.strip()}
    return [LABELS[name] for name, value in local.items()
            if name in recorded and recorded[name] != value
            and not (name == "secret_key" and recorded[name] in local_secrets)]


def check_keys(settings: Settings, engine: Engine) -> dict[str, str]:
    """Raise KeyMismatch naming each key that differs from the database's record; returns the local fingerprints."""
    local = local_fingerprints(settings)
    recorded = recorded_fingerprints(engine)
    wrong = differing(settings, recorded) if recorded else []
    if wrong:
        raise KeyMismatch(
            f"this process's {', '.join(wrong)} differ{'s' if len(wrong) == 1 else ''} from the installation's "
            "(recorded in the database): refusing to send; copy sendwell.env and the DKIM key from an existing "
            "machine, or run `sendwell init --join FILE`")
    return local


def describe(fingerprints: dict[str, str]) -> str:
    """One log line's worth: `secret key abcd…, pepper …, DKIM …`."""
    return ", ".join(f"{LABELS[name]} {value}" for name, value in fingerprints.items())
