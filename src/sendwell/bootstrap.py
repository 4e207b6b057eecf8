"""First-run setup shared by `sendwell init` and the demo: keys, webhook secret, data folder, schema."""

from __future__ import annotations

import secrets
from typing import Any

from sendwell.config import Settings, load_settings, write_config_values
from sendwell.db.migrate import migrate
from sendwell.db.session import engine_for
from sendwell.delivery import dkim
from sendwell.webhooks.delivery import new_webhook_secret


def initialise(settings: Settings, **overrides: Any) -> tuple[Settings, dict[str, Any]]:
    """Create what is missing (secret key, pepper, webhook secret, DKIM key, schema); returns fresh settings.

    The webhook secret is made only when webhook URLs are configured (delivery makes one on
    first need otherwise); it is its own key, never derived from the secret key.
    """
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
    finally:
        engine.dispose()
    return settings, created


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
