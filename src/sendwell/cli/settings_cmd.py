"""`sendwell settings …`: the settings saved in the admin, which live in the database."""

from __future__ import annotations

import click

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction
from sendwell.settings_edit import EDITABLE, SettingsError, editable_values, import_file, stored_values


@click.group("settings")
def settings() -> None:
    """Show the settings the admin edits, or move them from sendwell.env into the database."""


def _source(value) -> str:  # type: ignore[no-untyped-def]
    if value.from_environment:
        return "environment"
    if value.from_database:
        return "database"
    return "sendwell.env" if value.from_file else "default"


@settings.command("list")
@json_option
def settings_list(as_json: bool) -> None:
    """Each setting the admin edits, its value here and where it comes from
    (environment > database > sendwell.env > default)."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        values = editable_values(runtime.settings, stored_values(session))
    rows = [{"variable": v.variable, "value": v.value, "source": _source(v)} for v in values]
    emit(rows, as_json, "\n".join(f"{r['variable']}={r['value']}  ({r['source']})" for r in rows))


@settings.command("import-env")
@json_option
def settings_import_env(as_json: bool) -> None:
    """Store the admin's settings found in this machine's sendwell.env in the database (those it
    does not hold yet), so every machine uses them; the file is left as it is."""
    runtime = get_runtime()
    path = runtime.settings.config_file
    try:
        with transaction(runtime.factory) as session:
            imported, skipped = import_file(runtime.settings, session)
    except SettingsError as exc:
        fail(f"{path}: {exc}; nothing was imported")
    result = {"file": str(path), "imported": [EDITABLE[f][0] for f in imported],
              "skipped": [EDITABLE[f][0] for f in skipped]}
    human = (f"imported into the database from {path}: {', '.join(result['imported'])}" if imported
             else f"nothing to import from {path}")
    if skipped:
        human += f"\nalready in the database (its value wins, left alone): {', '.join(result['skipped'])}"
    emit(result, as_json, human)
