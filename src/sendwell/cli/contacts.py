"""`sendwell contacts …`."""

from __future__ import annotations

from pathlib import Path

import click

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction

# ---------------------------------------------------------------- contacts
@click.group()
def contacts() -> None:
    """Import, export and inspect contacts."""


@contacts.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", default="", help="Where these contacts come from (shown in GDPR Art 14 notices).")
@click.option("--consent", default=None, help="Consent kind to record for every row (express, implied_purchase, …).")
@click.option("--topic", default=None, help="Subscribe every row to this topic (created if missing).")
@click.option("--dry-run", is_flag=True, help="Validate and count, write nothing.")
@json_option
def contacts_import(file: Path, source: str, consent: str | None, topic: str | None, dry_run: bool, as_json: bool) -> None:
    """Import contacts from a CSV file; nothing is written unless every row is valid."""
    from sendwell.contacts.service import ImportError_, import_contacts

    if not file.exists():
        fail(f"{file}: no such file")
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            result = import_contacts(
                session, path=file, pepper=runtime.settings.pepper, source=source,
                consent=consent, topic=topic, dry_run=dry_run,
            )
            if result.errors:
                session.rollback()
    except ImportError_ as exc:
        fail(f"{file}: {exc}")
    if result.errors:
        first = result.errors[0]
        more = f" (and {len(result.errors) - 1} more errors)" if len(result.errors) > 1 else ""
        if as_json:
            emit(result.as_dict(), True)
        fail(f"{file}: {first}{more}; nothing was imported")
    verb = "would import" if dry_run else "imported"
    human = f"{verb} {result.created} new and {result.updated} updated contacts from {file}"
    if result.suppressed:
        human += f"; {result.suppressed} are suppressed and stay suppressed"
    if not consent and not dry_run:
        human += "\nnote: no --consent given, so these contacts have no consent on record and marketing will skip them"
    emit(result.as_dict(), as_json, human)


@contacts.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def contacts_export(file: Path, as_json: bool) -> None:
    """Export contacts to CSV; suppressed addresses are never exported."""
    from sendwell.contacts.service import export_contacts

    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        count = export_contacts(session, path=file)
    emit({"file": str(file), "exported": count}, as_json, f"exported {count} contacts to {file}")


