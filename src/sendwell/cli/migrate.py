"""`sendwell migrate`: bring the database to the newest schema (safe to run on every deploy)."""

from __future__ import annotations

import click

from sendwell.cli.common import emit, fail, get_settings, json_option
from sendwell.cli.context import safe_url
from sendwell.db.migrate import UnknownRevision, migrate as run_migrations
from sendwell.db.session import engine_for
from sendwell.keys import record_fingerprints


@click.command()
@json_option
def migrate(as_json: bool) -> None:
    """Upgrade the database schema to this version's newest revision; refuses a downgrade."""
    settings = get_settings()
    url = settings.effective_database_url
    engine = engine_for(settings)
    try:
        result = run_migrations(engine)
        # The first run with keys configured (a container or unit's environment) records the
        # installation's key fingerprints, so every delivery process is checked against them.
        recorded = bool(settings.secret_key and settings.hash_pepper) and record_fingerprints(engine, settings)
    except UnknownRevision as exc:
        fail(str(exc))
    except Exception as exc:
        fail(f"cannot migrate {safe_url(url)}: {exc}")
    finally:
        engine.dispose()
    data = {"database": safe_url(url), "from": result.before, "to": result.after, "changed": result.changed,
            "keys_recorded": recorded}
    human = (f"migrated {data['database']} from {result.before or 'an empty database'} to {result.after}"
             if result.changed else f"already at {result.after} ({data['database']})")
    if recorded:
        human += "; recorded the installation's key fingerprints"
    emit(data, as_json, human)
