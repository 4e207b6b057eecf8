"""`sendwell migrate`: bring the database to the newest schema (safe to run on every deploy)."""

from __future__ import annotations

import click

from sendwell.cli.common import emit, fail, get_settings, json_option
from sendwell.cli.context import safe_url
from sendwell.db.migrate import UnknownRevision, migrate as run_migrations
from sendwell.db.session import engine_for


@click.command()
@json_option
def migrate(as_json: bool) -> None:
    """Upgrade the database schema to this version's newest revision; refuses a downgrade."""
    settings = get_settings()
    url = settings.effective_database_url
    engine = engine_for(settings)
    try:
        result = run_migrations(engine)
    except UnknownRevision as exc:
        fail(str(exc))
    except Exception as exc:
        fail(f"cannot migrate {safe_url(url)}: {exc}")
    finally:
        engine.dispose()
    data = {"database": safe_url(url), "from": result.before, "to": result.after, "changed": result.changed}
    human = (f"migrated {data['database']} from {result.before or 'an empty database'} to {result.after}"
             if result.changed else f"already at {result.after} ({data['database']})")
    emit(data, as_json, human)
