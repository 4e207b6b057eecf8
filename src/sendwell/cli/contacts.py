"""`sendwell contacts …`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.contacts.fields import parse_mapping
from sendwell.contacts.importer import ImportFileError, default_rejected_path, import_contacts
from sendwell.contacts.service import erase_contact, export_contacts
from sendwell.contacts.vocabulary import add_value, list_values
from sendwell.db.session import transaction


# ---------------------------------------------------------------- contacts
@click.group()
def contacts() -> None:
    """Import, export, erase and describe contacts."""


@contacts.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", default="", help="Where these contacts come from (shown in GDPR Art 14 notices).")
@click.option("--consent", default=None,
              help="Consent kind for every row: express, implied_purchase, implied_inquiry, soft_opt_in, "
                   "legitimate_interest_b2b (a 'consent' column overrides it per row).")
@click.option("--consent-source", default="import_file",
              type=click.Choice(["web_form", "trade_fair", "import_file", "purchase", "api", "resubscribe"]),
              help="How the consent was obtained.")
@click.option("--wording", default="", help="The consent wording shown to these people (stored with its hash).")
@click.option("--topic", default=None, help="Subscribe every row to this topic (created if missing).")
@click.option("--map", "mapping", default="", help="Override column mapping: \"Mail Address=email,Firma=company,Notes=-\".")
@click.option("--dry-run", is_flag=True, help="Validate and count, write nothing.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows even if some rows are bad (default: all or nothing).")
@click.option("--rejected", "rejected_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the rejected rows (default: FILE.rejected.csv next to the input).")
@json_option
def contacts_import(file: Path, source: str, consent: str | None, consent_source: str, wording: str,
                    topic: str | None, mapping: str, dry_run: bool, skip_invalid: bool,
                    rejected_file: Path | None, as_json: bool) -> None:
    """Import contacts from CSV or XLSX; nothing is written unless every row is valid (or --skip-invalid)."""
    if not file.exists():
        fail(f"{file}: no such file")
    runtime = get_runtime()
    try:
        overrides = parse_mapping(mapping)
        with Progress(TextColumn("importing"), BarColumn(), TextColumn("{task.fields[rows]:,} rows"),
                      TimeRemainingColumn(), disable=as_json, transient=True) as progress:
            task = progress.add_task("import", total=None, rows=0)

            def on_progress(done: int, total: int | None, rows: int) -> None:
                progress.update(task, completed=done, total=total, rows=rows)

            with transaction(runtime.factory) as session:
                result = import_contacts(
                    session, path=file, pepper=runtime.settings.pepper, source=source, consent=consent,
                    consent_source=consent_source, wording=wording, topic=topic, mapping=overrides,
                    dry_run=dry_run, skip_invalid=skip_invalid,
                    rejected_path=rejected_file or default_rejected_path(file),
                    region_map=runtime.settings.region_overrides, roles=runtime.settings.role_address_set,
                    on_progress=on_progress,
                )
    except ImportFileError as exc:
        fail(f"{file}: {exc}")
    data = result.as_dict()
    if result.rejected and not skip_invalid:
        if as_json:
            emit(data, True)
        first = result.errors[0]
        more = f" (and {result.rejected - 1} more bad rows)" if result.rejected > 1 else ""
        fail(f"{file}: {first}{more}; nothing was imported; every bad row is listed in {result.rejected_file}"
             "; fix them or use --skip-invalid")
    verb = "would import" if dry_run else "imported"
    lines = [f"{verb} {result.created} new and {result.updated} updated contacts from {file} ({result.file_format})"]
    if result.duplicates:
        lines.append(f"  {result.duplicates} duplicate rows merged")
    if result.suppressed:
        lines.append(f"  {result.suppressed} suppressed addresses kept out (an import never resubscribes)")
    if result.rejected:
        lines.append(f"  {result.rejected} bad rows skipped; see {result.rejected_file}")
    if result.warning_count:
        # Address cleaning (docs/hygiene.md): imported as given; a person should look.
        lines.append(f"  {result.warning_count} address warnings (imported as given):")
        lines.extend(f"    {w}" for w in result.warnings[:10])
    if result.consents:
        lines.append(f"  {result.consents} consent records")
    elif not dry_run and result.created + result.updated:
        lines.append("note: no --consent given and no consent column, so these contacts have no lawful basis "
                     "on record and marketing will skip them")
    emit(data, as_json, "\n".join(lines))


@contacts.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default=None,
              help="Default: from the file name (.xlsx → XLSX, else CSV).")
@json_option
def contacts_export(file: Path, fmt: str | None, as_json: bool) -> None:
    """Export contacts to CSV or XLSX; suppressed addresses are never exported."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        count = export_contacts(session, path=file, fmt=fmt)
    emit({"file": str(file), "exported": count}, as_json, f"exported {count} contacts to {file}")


@contacts.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def contacts_erase(email: str, yes: bool, as_json: bool) -> None:
    """Erase a person's data (GDPR Art 17); only a peppered hash stays, so the opt-out survives."""
    if not yes and not as_json:
        click.confirm(f"Erase every personal detail of {email}? This cannot be undone", abort=True)
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        result = erase_contact(session, email=email, pepper=runtime.settings.pepper)
    human = (f"erased {email}" if result.found else f"{email} was not stored")
    human += f"; its hash stays on the suppression list (reason {result.suppression_reason})"
    emit(result.as_dict(), as_json, human)


@contacts.group("vocabulary")
def vocabulary() -> None:
    """The industries and stages contacts may have."""


@vocabulary.command("list")
@click.argument("kind", type=click.Choice(["industry", "stage"]))
@json_option
def vocabulary_list(kind: str, as_json: bool) -> None:
    """List the values (built-in and added) with their accepted spellings."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        values = list_values(session, kind=kind)
    emit(values, as_json, "\n".join(
        f"{v['value']}{'' if v['builtin'] else ' (added)'}: {', '.join(v['aliases'])}" for v in values  # type: ignore[arg-type]
    ))


@vocabulary.command("add")
@click.argument("kind", type=click.Choice(["industry", "stage"]))
@click.argument("value")
@click.option("--alias", "aliases", multiple=True, help="Another spelling accepted on import (repeatable).")
@click.option("--label", default="")
@json_option
def vocabulary_add(kind: str, value: str, aliases: tuple[str, ...], label: str, as_json: bool) -> None:
    """Add an industry or stage (or more spellings of one)."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            row = add_value(session, kind=kind, value=value, label=label, aliases=list(aliases))
            out = {"kind": row.kind, "value": row.value, "aliases": list(row.aliases or [])}
    except ValueError as exc:
        fail(str(exc))
    emit(out, as_json, f"{kind} {out['value']!r} accepted on import and in segments")
