"""First-run setup shared by `sendwell init` and the demo: keys, webhook secret, data folder, schema."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine, make_url

from sendwell.config import Settings, load_settings, read_config_file, write_config_values
from sendwell.db.migrate import migrate
from sendwell.db.session import engine_for
from sendwell.delivery import dkim
from sendwell.keys import KeyMismatch, check_keys, differing, recorded_fingerprints, record_fingerprints
from sendwell.webhooks.delivery import new_webhook_secret


# The settings `init --join FILE` takes from the first machine's sendwell.env.
JOIN_KEYS = ("secret_key", "hash_pepper", "dkim_domain", "dkim_selector", "dkim_key_file",
             "dkim_ed25519_selector", "dkim_ed25519_key_file")
FOREIGN_DATABASE = ("this database belongs to an installation with other keys: copy sendwell.env and the DKIM key "
                    "from an existing machine, or run `sendwell init --join FILE`")


def initialise(settings: Settings, join: Path | None = None, record_keys: bool = False,
               **overrides: Any) -> tuple[Settings, dict[str, Any]]:
    """Create what is missing (secret key, pepper, webhook secret, DKIM key, schema); returns fresh settings.

    The webhook secret is made only when webhook URLs are configured (delivery makes one on
    first need otherwise); it is its own key, never derived from the secret key. The first
    run on an empty database records the keys' fingerprints there; a data folder without
    keys is refused against a database that has them (KeyMismatch), unless `join` names the
    env file of a machine of that installation, whose keys are taken instead. `record_keys`
    makes this data folder's keys the installation's (after a deliberate change: a new DKIM key).
    """
    if join is not None:
        _join(settings, join)
        settings = load_settings(data_dir=settings.data_dir, **overrides)
    elif not settings.secret_key and _recorded_before(settings):
        raise KeyMismatch(FOREIGN_DATABASE)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    created: dict[str, Any] = {}
    new_values: dict[str, str] = {}
    if not settings.secret_key:
        new_values["secret_key"] = secrets.token_urlsafe(32)
        created["secret_key"] = True
    if not settings.hash_pepper:
        new_values["hash_pepper"] = secrets.token_urlsafe(32)
        created["hash_pepper"] = True
    if settings.webhook_urls.strip() and not settings.webhook_secret:
        new_values["webhook_secret"] = new_webhook_secret()
        created["webhook_secret"] = True
    if new_values:
        write_config_values(settings.config_file, new_values)
        settings.config_file.chmod(0o600)
    settings = load_settings(data_dir=settings.data_dir, **overrides)
    if not (settings.dkim_domain and settings.dkim_key_file):
        created["dkim"] = create_dkim_key(settings)
        settings = load_settings(data_dir=settings.data_dir, **overrides)
    engine = engine_for(settings)
    try:
        migrate(engine)  # refuses a database from a newer release with a clear reason
        if record_fingerprints(engine, settings, replace=record_keys):
            created["fingerprints"] = True
        check_keys(settings, engine)
    finally:
        engine.dispose()
    return settings, created


def _recorded_before(settings: Settings) -> dict[str, str]:
    """The database's recorded fingerprints, without creating a SQLite file that is not there yet."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return {}
    engine: Engine = engine_for(settings)
    try:
        return recorded_fingerprints(engine)
    finally:
        engine.dispose()


def _join(settings: Settings, env_file: Path) -> None:
    """Take the keys of `env_file` (another machine's sendwell.env) into this data folder, if the database agrees."""
    if settings.secret_key or settings.hash_pepper:
        raise KeyMismatch(f"{settings.config_file} already has keys: --join is for a data folder without keys")
    values = {name: value for name, value in read_config_file(env_file).items() if name in JOIN_KEYS and value}
    missing = [f"SENDWELL_{name.upper()}" for name in ("secret_key", "hash_pepper") if name not in values]
    if missing:
        raise KeyMismatch(f"{env_file} does not set {' and '.join(missing)}")
    for name in ("dkim_key_file", "dkim_ed25519_key_file"):
        if name in values and not Path(values[name]).expanduser().is_file():
            raise KeyMismatch(f"{env_file} names the DKIM key file {values[name]}, which is not on this machine: "
                              "copy it to that path first")
    wrong = differing(settings.replace(**values), _recorded_before(settings))
    if wrong:
        raise KeyMismatch(f"the {', '.join(wrong)} in {env_file} differ from this database's installation")
    write_config_values(settings.config_file, values)
    settings.config_file.chmod(0o600)


def create_dkim_key(settings: Settings) -> dict[str, str]:
    """Generate an RSA-2048 key in the data folder and point the config file at it."""
    domain = settings.dkim_domain or settings.sender_domain
    selector = settings.dkim_selector
    key_dir = settings.data_dir / "dkim"
    key_dir.mkdir(parents=True, exist_ok=True)
    key_file = key_dir / f"{selector}.{domain}.pem"
    if not key_file.exists():
        pem = dkim.generate_private_key()
        key_file.touch(mode=0o600)
        key_file.write_bytes(pem)
    write_config_values(
        settings.config_file,
        {"dkim_domain": domain, "dkim_selector": selector, "dkim_key_file": str(key_file.resolve())},
    )
    record = dkim.dns_record(domain=domain, selector=selector, private_key_pem=key_file.read_bytes())
    return {"key_file": str(key_file), "record": record}
