"""`sendwell hygiene run|runs`: the scheduled list-hygiene jobs, on demand and as of any day."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from sendwell.campaigns.service import CampaignError
from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction
from sendwell.delivery.runner import run_campaign
from sendwell.flows import run_hygiene
from sendwell.hygiene.report import summary_rows
from sendwell.hygiene.service import HygieneError, list_runs
from sendwell.worker.queue import Queue


def parse_as_of(value: str) -> datetime:
    """`2026-06-30` (midnight UTC) or an ISO 8601 time (UTC when no offset); ValueError otherwise."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--as-of {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@click.group()
def hygiene() -> None:
    """List hygiene: sunset flow, address cleaning, soft-bounce streaks, consent expiry, pauses."""


@hygiene.command("run")
@click.option("--as-of", "as_of", default=None, metavar="DATE", help="Run as of this day or time (default: now).")
@click.option("--dry-run", is_flag=True, help="Report what the pass would do; change nothing.")
@click.option("--wait", is_flag=True, help="Deliver the reconfirmation mails in this process before returning.")
@json_option
def hygiene_run(as_of: str | None, dry_run: bool, wait: bool, as_json: bool) -> None:
    """Run one hygiene pass and print its report."""
    try:
        now = parse_as_of(as_of) if as_of else None
    except ValueError as exc:
        fail(str(exc))
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            result = run_hygiene(session, settings=runtime.settings, now=now, dry_run=dry_run, trigger="cli")
    except (HygieneError, CampaignError) as exc:
        fail(str(exc))
    deliver_batches(runtime, result.batches, wait=wait)
    if as_json:
        emit(result.report, True)
        return
    print_report(result.report)


def deliver_batches(runtime: Any, batches: list[tuple[int, list[list[int]]]], *, wait: bool) -> None:
    """Hand a pass's reconfirmation batches to the queue, or deliver them here with `wait`."""
    if not batches:
        return
    if wait:
        deliverer = runtime.make_deliverer()
        try:
            for campaign_id, _ in batches:
                run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
        finally:
            deliverer.transport.close()
        return
    queue = Queue(runtime)
    for campaign_id, ids in batches:
        queue.enqueue_batches(campaign_id, ids)


@hygiene.command("runs")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@json_option
def hygiene_runs(limit: int, as_json: bool) -> None:
    """The latest hygiene passes and what each did."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        runs = [{"id": r.id, "as_of": r.as_of.isoformat(), "started_at": r.started_at.isoformat(),
                 "dry_run": r.dry_run, "trigger": r.trigger, "report": r.report}
                for r in list_runs(session, limit=limit)]
    if as_json:
        emit(runs, True)
        return
    for run in runs:
        print_report(run["report"])


def print_report(report: dict[str, Any]) -> None:
    title = f"Hygiene pass as of {report['as_of'][:19].replace('T', ' ')} UTC"
    if report.get("dry_run"):
        title += " (dry run: nothing was changed)"
    table = Table(title=title, title_justify="left", padding=(0, 1))
    table.add_column("job", no_wrap=True)
    table.add_column("result")
    for job, result in summary_rows(report):
        table.add_row(job, result)
    Console(width=max(Console().width, 100)).print(table)
