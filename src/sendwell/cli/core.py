"""Core commands: init, contacts, campaigns, serve, worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import inspect

from sendwell.cli.common import emit, fail, get_settings, json_option
from sendwell.db.session import transaction
from sendwell.runtime import Runtime


def get_runtime(ready: bool = True) -> Runtime:
    """The runtime for this command; with `ready`, fail clearly if `init` was never run."""
    ctx = click.get_current_context()
    settings = get_settings(ctx)  # also creates root.obj
    root = ctx.find_root()
    if "runtime" not in root.obj:
        root.obj["runtime"] = Runtime(settings)
        ctx.call_on_close(root.obj["runtime"].dispose)
    runtime: Runtime = root.obj["runtime"]
    if ready:
        try:
            tables = set(inspect(runtime.engine).get_table_names())
        except Exception as exc:
            fail(f"cannot open the database {_safe_url(runtime.settings.effective_database_url)}: {exc}")
        if "alembic_version" not in tables:
            fail("the database is not initialised: run `sendwell init` first")
        try:
            runtime.settings.secret_keys
        except RuntimeError as exc:
            fail(str(exc))
    return runtime


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------- init
@click.command()
@json_option
def init(as_json: bool) -> None:
    """Create the data folder, keys and the database schema."""
    from sendwell.setup import initialise

    settings = get_settings()
    try:
        settings, created = initialise(settings)
    except Exception as exc:
        fail(f"cannot initialise {_safe_url(settings.effective_database_url)}: {exc}")
    result = {
        "data_dir": str(settings.data_dir.resolve()),
        "database": _safe_url(settings.effective_database_url),
        "created": created,
    }
    human = f"Sendwell is ready in {result['data_dir']} (database {result['database']})."
    if "dkim" in created:
        human += f"\nPublish this DKIM record in DNS:\n  {created['dkim']['record']}"
    emit(result, as_json, human)


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


# ---------------------------------------------------------------- campaigns
@click.group()
def campaigns() -> None:
    """Create, check, send and follow campaigns."""


@campaigns.command("create")
@click.option("--name", required=True)
@click.option("--subject", required=True)
@click.option("--html", "html_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--text", "text_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--segment", default="", help="e.g. \"region = eu and stage in (prospect, customer)\"")
@click.option("--topic", default=None)
@click.option("--kind", default="marketing", type=click.Choice(["marketing", "launch", "transactional", "reconfirmation"]))
@json_option
def campaigns_create(name: str, subject: str, html_file: Path, text_file: Path | None, segment: str,
                     topic: str | None, kind: str, as_json: bool) -> None:
    """Create a draft campaign; prints its id."""
    from sendwell.content.render import TemplateError
    from sendwell.delivery.service import CampaignError, create_campaign
    from sendwell.segments.expression import SegmentError

    html = _read_text(html_file)
    text = _read_text(text_file) if text_file else ""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            campaign = create_campaign(
                session, settings=runtime.settings, name=name, subject=subject, html=html, text=text,
                segment=segment, topic=topic, kind=kind,
            )
            campaign_id = campaign.id
    except SegmentError as exc:
        fail(f"--segment: {exc}")
    except (TemplateError, CampaignError) as exc:
        fail(str(exc))
    emit({"id": campaign_id}, as_json, str(campaign_id))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text")
    raise AssertionError("unreachable")


@campaigns.command("send")
@click.argument("campaign_id", type=int)
@click.option("--wait", is_flag=True, help="Deliver in this process and return when the campaign is done.")
@json_option
def campaigns_send(campaign_id: int, wait: bool, as_json: bool) -> None:
    """Plan the campaign (eligibility per contact) and queue or deliver it."""
    from sendwell.delivery.service import CampaignError, plan_campaign, queue_campaign, get_campaign

    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            campaign = get_campaign(session, campaign_id=campaign_id)
            plan_campaign(session, campaign=campaign)
            batches = queue_campaign(session, campaign=campaign)
    except CampaignError as exc:
        fail(str(exc))
    if not wait:
        from sendwell.worker.queue import Queue

        Queue(runtime).enqueue_batches(campaign_id, batches)
        _status_out(runtime, campaign_id, as_json, prefix=f"queued {sum(map(len, batches))} mails in {len(batches)} jobs")
        return
    _deliver_now(runtime, campaign_id, as_json)


def _deliver_now(runtime: Runtime, campaign_id: int, as_json: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from sendwell.delivery.service import run_campaign
    from sendwell.delivery.transport import TransportUnavailable

    deliverer = runtime.make_deliverer()
    try:
        with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                      disable=as_json, transient=True) as progress:
            task = progress.add_task("send", total=None)

            def on_progress(counts: dict[str, int]) -> None:
                done = sum(counts.get(s, 0) for s in ("sent", "failed", "deferred"))
                todo = done + sum(counts.get(s, 0) for s in ("queued", "sending"))
                progress.update(task, completed=done, total=todo)

            run_campaign(runtime.factory, deliverer, campaign_id=campaign_id, on_progress=on_progress)
    except TransportUnavailable as exc:
        fail(f"{exc}; unsent mails stay queued, run the command again to resume")
    finally:
        deliverer.transport.close()
    _status_out(runtime, campaign_id, as_json)


def _status_out(runtime: Runtime, campaign_id: int, as_json: bool, prefix: str = "") -> None:
    from sendwell.delivery.service import CampaignError, campaign_status

    try:
        with transaction(runtime.factory) as session:
            status = campaign_status(session, campaign_id=campaign_id)
    except CampaignError as exc:
        fail(str(exc))
    lines = [prefix] if prefix else []
    lines.append(f"campaign {status['id']} “{status['name']}”: {status['status']}, {status['total']} recipients")
    lines.append("  " + ", ".join(f"{k} {v}" for k, v in status["states"].items() if v))
    if status["skipped"]:
        lines.append("  skipped: " + ", ".join(f"{k} {v}" for k, v in status["skipped"].items()))
    emit(status, as_json, "\n".join(lines))


@campaigns.command("status")
@click.argument("campaign_id", type=int)
@json_option
def campaigns_status(campaign_id: int, as_json: bool) -> None:
    """Counts by state and by skip reason."""
    _status_out(get_runtime(), campaign_id, as_json)


def _status_command(action: str) -> click.Command:
    @click.command(action, help=f"{action.capitalize()} a campaign.")
    @click.argument("campaign_id", type=int)
    @json_option
    def command(campaign_id: int, as_json: bool) -> None:
        from sendwell.delivery.service import CampaignError, set_campaign_status

        runtime = get_runtime()
        try:
            with transaction(runtime.factory) as session:
                set_campaign_status(session, campaign_id=campaign_id, action=action)
        except CampaignError as exc:
            fail(str(exc))
        _status_out(runtime, campaign_id, as_json)

    return command


for _action in ("pause", "resume", "cancel"):
    campaigns.add_command(_status_command(_action))


# ---------------------------------------------------------------- serve / worker
@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=int)
@click.option("--workers", "queue_workers", default=2, show_default=True, help="Embedded queue worker threads.")
def serve(host: str, port: int, queue_workers: int) -> None:
    """Run the web app with the embedded queue worker and scheduler."""
    import uvicorn

    from sendwell.web.app import create_app
    from sendwell.worker.queue import Queue

    runtime = get_runtime()
    consumer = Queue(runtime).consumer(workers=queue_workers) if queue_workers > 0 else None
    if consumer is not None:
        consumer.start()
    try:
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="info")
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)


@click.command()
@click.option("--threads", default=4, show_default=True, help="Consumer threads (one SMTP session each).")
def worker(threads: int) -> None:
    """Run a queue worker (scale-out shape: SENDWELL_QUEUE_URL=redis://…)."""
    from sendwell.worker.queue import Queue

    runtime = get_runtime()
    Queue(runtime).consumer(workers=threads).run()
