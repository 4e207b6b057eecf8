"""`sendwell campaigns …`: create, send, schedule, pause and follow campaigns."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import InterfaceError, OperationalError

from sendwell.access.users import get_user_by_email
from sendwell.campaigns.service import (
    CampaignError,
    confirm_transactional,
    create_campaign,
    get_campaign,
    set_campaign_status,
)
from sendwell.cli.campaign_manage import COMMANDS as MANAGE_COMMANDS
from sendwell.cli.common import emit, fail, get_settings, json_option
from sendwell.cli.content import campaigns_lint, campaigns_preview, refuse_unsendable
from sendwell.cli.context import get_runtime, safe_url
from sendwell.cli.domain import print_refusal
from sendwell.cli.processes import send_on_cores
from sendwell.content.render import TemplateError
from sendwell.content.service import ComplianceError
from sendwell.db.session import transaction
from sendwell.delivery.planning import queued_batches
from sendwell.delivery.limiter import StoreUnavailable
from sendwell.delivery.progress import campaign_status
from sendwell.delivery.runner import DEFERRED, leftovers
from sendwell.flows import plan_preview, schedule_sending, start_sending
from sendwell.mail.transport import TransportUnavailable
from sendwell.runtime import Runtime
from sendwell.segments.expression import SegmentError
from sendwell.segments.service import resolve_segment
from sendwell.worker.queue import Queue, QueueUnavailable


# ---------------------------------------------------------------- campaigns
@click.group()
def campaigns() -> None:
    """Create, check, send and follow campaigns."""


@campaigns.command("create")
@click.option("--name", required=True)
@click.option("--subject", required=True)
@click.option("--html", "html_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--text", "text_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--segment", default="", help="e.g. \"region = eu and stage in (prospect, customer)\", JSON, or @saved-name")
@click.option("--topic", default=None)
@click.option("--kind", default="marketing", type=click.Choice(["marketing", "launch", "transactional", "reconfirmation"]))
@click.option("--over-cap", "over_cap", default="skip", type=click.Choice(["skip", "defer"]),
              help="Contacts over their frequency cap: skip them, or defer to the earliest allowed time.")
@json_option
def campaigns_create(name: str, subject: str, html_file: Path, text_file: Path | None, segment: str,
                     topic: str | None, kind: str, over_cap: str, as_json: bool) -> None:
    """Create a draft campaign; prints its id."""
    html = _read_text(html_file)
    text = _read_text(text_file) if text_file else ""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            segment = resolve_segment(session, segment)  # `@saved-name`, checked against the vocabularies
            campaign = create_campaign(
                session, settings=runtime.settings, name=name, subject=subject, html=html, text=text,
                segment=segment, topic=topic, kind=kind, over_cap=over_cap,
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


EXIT_UNSENT = 3  # `send --wait` returned with mail unsent and no retry time for it
EXIT_DEFERRED = 75  # EX_TEMPFAIL: everything that could go went; the rest waits for the retry time printed


def _outages_in_one_line(command: Callable[..., None]) -> Callable[..., None]:
    """The database or Redis unreachable: one line and exit status 1, no traceback.

    Nothing is lost: a send this process claimed comes back on the next run (its pid is
    dead, sendwell.db.processes), the rest stays queued; running the command again continues.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            url = safe_url(get_settings().effective_database_url)
            fail(f"the database ({url}) is unreachable: {exc.orig or exc}; run the command again when it is back "
                 "to continue")
        except QueueUnavailable as exc:
            fail(f"{exc}; run the command again when it is back to continue")

    return run


@campaigns.command("send")
@click.argument("campaign_id", type=int)
@click.option("--wait", is_flag=True, help="Deliver from this command (one process per core by default) and "
              "return when the campaign is done.")
@click.option("--processes", default=None, type=click.IntRange(min=0),
              help="With --wait: delivery processes, this one included; 0 for one per core "
                   "[default: SENDWELL_DELIVERY_PROCESSES, auto].")
@click.option("--dry-run", "dry_run", is_flag=True, help="Print what a send would do now (recipients, skips by "
              "reason, deferrals, by region and language, compliance findings) and change nothing.")
@json_option
@_outages_in_one_line
def campaigns_send(campaign_id: int, wait: bool, processes: int | None, dry_run: bool, as_json: bool) -> None:
    """Plan the campaign (eligibility per contact) and queue or deliver it.

    Exit status: 0 when nothing is left to send (or, without --wait, the mails are queued); 1 on
    an error (the database or Redis unreachable, the SMTP server down, …): run it again to
    continue; with --wait, 3 when sends are left unsent with no retry time (held by another live
    process, the campaign paused or cancelled, …), 75 when all that is left waits for a retry
    time it prints (a 4xx retry, a sending window, a frequency cap, warm-up), each printed with
    its reason (docs/delivery.md, "send --wait").
    """
    if processes is not None and not wait:
        fail("--processes applies only with --wait (without it, `sendwell serve` or `sendwell worker` deliver)")
    if dry_run:
        if wait:
            fail("--dry-run changes nothing, so it cannot --wait for delivery")
        _plan_out(campaign_id, as_json)
        return
    runtime = get_runtime()
    queue = None if wait else Queue(runtime)
    if queue is not None:
        queue.check()  # before anything changes: with Redis down the campaign stays as it was
    try:
        with transaction(runtime.factory) as session:
            get_campaign(session, campaign_id=campaign_id)
            # Blocking compliance lint first, so its findings print one per line; start_sending
            # runs the same gate again (cheap) as every other entry point does.
            refuse_unsendable(session, runtime.settings, campaign_id, as_json)
            batches = start_sending(session, settings=runtime.settings, campaign_id=campaign_id)
            if queue is not None:  # every queued send: a run that lost Redis halfway left some without a job
                batches = queued_batches(session, campaign_id=campaign_id, batch_size=runtime.settings.batch_size)
    except CampaignError as exc:
        fail(str(exc))
    except ComplianceError as exc:  # the sender-domain gate in start_sending
        print_refusal(exc, as_json)
    if queue is not None:
        queue.enqueue_batches(campaign_id, batches)
        _status_out(runtime, campaign_id, as_json, prefix=f"queued {sum(map(len, batches))} mails in {len(batches)} jobs")
        return
    _deliver_now(runtime, campaign_id, as_json, processes)


@campaigns.command("schedule")
@click.argument("campaign_id", type=int)
@click.option("--at", "at", required=True, metavar="TIME",
              help="ISO 8601 start time with its offset, e.g. 2026-12-01T09:00+08:00 (or ...Z for UTC).")
@json_option
def campaigns_schedule(campaign_id: int, at: str, as_json: bool) -> None:
    """Start a draft at a later time (the worker starts it; `unschedule` to edit it again)."""
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        fail(f"--at: {at!r} is not an ISO 8601 time such as 2026-12-01T09:00+08:00")
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            get_campaign(session, campaign_id=campaign_id)
            refuse_unsendable(session, runtime.settings, campaign_id, as_json)
            schedule_sending(session, settings=runtime.settings, campaign_id=campaign_id, at=when)
    except CampaignError as exc:
        fail(str(exc))
    except ComplianceError as exc:  # the sender-domain gate in schedule_sending
        print_refusal(exc, as_json)
    _status_out(runtime, campaign_id, as_json, prefix=f"scheduled for {when.isoformat()}")


@campaigns.command("confirm-transactional")
@click.argument("campaign_id", type=int)
@click.option("--admin", "admin_email", required=True, metavar="EMAIL",
              help="The confirming admin user's email (kept with the campaign as the audit).")
@json_option
def campaigns_confirm_transactional(campaign_id: int, admin_email: str, as_json: bool) -> None:
    """Confirm a draft labelled transactional is transactional (admins only); sending needs it."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            user = get_user_by_email(session, email=admin_email)
            if user is None or user.disabled_at is not None:
                fail(f"--admin: no active admin user {admin_email!r} (see `sendwell users list`)")
            confirmation = confirm_transactional(session, campaign_id=campaign_id, email=user.email, role=user.role)
            result = {"id": campaign_id, "confirmed_by": confirmation.confirmed_by,
                      "confirmed_at": confirmation.confirmed_at.isoformat()}
    except CampaignError as exc:
        fail(str(exc))
    emit(result, as_json, f"campaign {campaign_id} confirmed as transactional by {result['confirmed_by']}")


def _plan_out(campaign_id: int, as_json: bool) -> None:
    """The dry run: the plan a send would make now, printed; nothing is written or queued."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            plan = plan_preview(session, settings=runtime.settings, campaign_id=campaign_id)
    except (CampaignError, SegmentError) as exc:
        fail(str(exc))
    data = plan.as_dict()

    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{k or '-'} {v}" for k, v in values.items())

    lines = [f"dry run, nothing changed: campaign {campaign_id} would go to {plan.recipients} of the segment's "
             f"{plan.contacts} contacts ({plan.reachable} reachable)"]
    lines.append(f"  now {plan.now}" + (f"; later {sum(plan.deferred.values())}: {counts(plan.deferred)}"
                                        if plan.deferred else ""))
    if plan.skipped:
        lines.append(f"  skipped {data['skipped_total']}: {counts(plan.skipped)}")
    if plan.recipients:
        lines.append(f"  by region: {counts(plan.by_region)}")
        lines.append(f"  by language: {counts(plan.by_language)}")
    lines.extend(f"  {f['severity']}: {f['code']}: {f['message']}" for f in plan.findings)
    if plan.blocked:
        lines.append("  blocked: the errors above refuse this send; fix them first")
    emit(data, as_json, "\n".join(lines))


def _deliver_now(runtime: Runtime, campaign_id: int, as_json: bool, processes: int | None = None) -> None:
    # One SMTP session per thread, as many as SENDWELL_SMTP_CONCURRENCY.
    deliverers = [runtime.make_deliverer() for _ in range(runtime.settings.smtp_concurrency)]
    try:
        with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                      disable=as_json, transient=True) as progress:
            task = progress.add_task("send", total=None, rate="")

            def on_progress(counts: dict[str, int]) -> None:
                done = sum(counts.get(s, 0) for s in ("sent", "failed", "deferred"))
                todo = done + sum(counts.get(s, 0) for s in ("queued", "sending"))
                speed = progress.tasks[0].speed
                progress.update(task, completed=done, total=todo, rate=f"{speed:,.0f} mails/s" if speed else "")

            # This process and, by default, one more per further core (cli/processes.py).
            send_on_cores(runtime, deliverers, campaign_id=campaign_id, processes=processes, on_progress=on_progress)
    except TransportUnavailable as exc:
        fail(f"{exc}; the unsent mails are deferred and retried by `sendwell serve` or `sendwell worker` "
             "(or run the command again later)")
    finally:
        for d in deliverers:
            d.transport.close()
    with transaction(runtime.factory) as session:
        left = leftovers(session, campaign_id=campaign_id, timeout=timedelta(seconds=runtime.settings.heartbeat_timeout))
    _status_out(runtime, campaign_id, as_json, left=left)
    if any(item["kind"] != DEFERRED for item in left):  # never 0 with mail unsent
        click.get_current_context().exit(EXIT_UNSENT)
    if left:
        click.get_current_context().exit(EXIT_DEFERRED)


def _status_out(runtime: Runtime, campaign_id: int, as_json: bool, prefix: str = "",
                left: list[dict[str, Any]] | None = None) -> None:
    try:
        with transaction(runtime.factory) as session:
            status = campaign_status(session, campaign_id=campaign_id)
    except CampaignError as exc:
        fail(str(exc))
    if left is not None:
        status["left"] = left
    lines = [prefix] if prefix else []
    lines.append(f"campaign {status['id']} “{status['name']}”: {status['status']}, {status['total']} recipients")
    if status.get("scheduled_at"):
        lines.append(f"  starts at {status['scheduled_at']}")
    lines.append("  " + ", ".join(f"{k} {v}" for k, v in status["states"].items() if v))
    if status["skipped"]:
        lines.append("  skipped: " + ", ".join(f"{k} {v}" for k, v in status["skipped"].items()))
    if status.get("deferred"):
        lines.append("  waiting: " + ", ".join(f"{k} {v}" for k, v in status["deferred"].items()))
    if status["status"] == "finished" and not (status["states"]["sent"] or status["states"]["failed"]):
        lines.append("  sent to nobody: " + ("every contact was skipped, for the reasons above" if status["total"]
                                             else "the segment matched no contact"))
    lines.extend(_provider_pace(runtime, status))
    p = status["progress"]
    if p["remaining"]:
        eta = f", about {_duration(p['eta_seconds'])} left" if p["eta_seconds"] else ""
        lines.append(f"  {p['remaining']} to go at {p['rate_per_second']:g} mails/s (last minute){eta}")
    if p["overall_rate_per_second"]:
        lines.append(f"  overall {p['overall_rate_per_second']:g} mails/s")
    if p["possibly_duplicated"]:
        lines.append(f"  {p['possibly_duplicated']} mails were in flight when a worker died and may have gone out twice")
    lines.extend(f"  not sent: {item['text']}" for item in left or ())
    emit(status, as_json, "\n".join(lines))


def _provider_pace(runtime: Runtime, status: dict[str, object]) -> list[str]:
    """Each provider group's pace into `status`; a line naming the groups below their full pace."""
    try:
        status["provider_pace"] = runtime.throttle.paces()
    except StoreUnavailable as exc:
        status["provider_pace"] = None
        return [f"  provider pace unknown: {exc}"]
    slowed = [p for p in status["provider_pace"] if p["factor"] < 1]
    if not slowed:
        return []
    return ["  provider pace: " + ", ".join(
        f"{p['group']} {p['per_second']:g}/s ({p['factor']:.0%} of {p['limit']}, {p['slowdowns']} slow-downs)"
        for p in slowed)]


def _duration(seconds: int) -> str:
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s" if minutes else f"{sec}s"


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
        runtime = get_runtime()
        try:
            with transaction(runtime.factory) as session:
                set_campaign_status(session, campaign_id=campaign_id, action=action)
                batches = queued_batches(session, campaign_id=campaign_id, batch_size=runtime.settings.batch_size) \
                    if action == "resume" else []
        except CampaignError as exc:
            fail(str(exc))
        if batches:
            # Workers released what they held when the pause came; hand it to the queue again.
            Queue(runtime).enqueue_batches(campaign_id, batches)
        _status_out(runtime, campaign_id, as_json)

    return command


for _action in ("pause", "resume", "unschedule", "cancel"):
    campaigns.add_command(_status_command(_action))
# The content checks are `campaigns` subcommands too; they live with the content adapter.
campaigns.add_command(campaigns_lint)
campaigns.add_command(campaigns_preview)
for _command in MANAGE_COMMANDS:  # list, clone, rename, archive, delete
    campaigns.add_command(_command)
