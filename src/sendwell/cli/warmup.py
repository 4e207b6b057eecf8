"""`sendwell warmup status|start|stop`: warm-up plans for a new sending domain or IP."""

from __future__ import annotations

import ipaddress
import re
from datetime import date, datetime, timezone
from typing import Any

import click

from sendwell.cli.common import echo_err, emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.cli.hygiene import parse_as_of
from sendwell.db.session import transaction
from sendwell.delivery.warmup import (
    EVERY_GROUP,
    WarmupError,
    default_schedule,
    parse_schedule,
    plan_status,
    start_plan,
    stop_plan,
    waiting_by_campaign,
)

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@click.group()
def warmup() -> None:
    """Warm up a new sending domain or IP: a growing daily allowance per provider group."""


@warmup.command("status")
@click.option("--as-of", "as_of", default=None, metavar="DATE", help="Show the plans as of this day or time.")
@click.option("--all", "show_all", is_flag=True, help="Stopped plans too.")
@json_option
def warmup_status(as_of: str | None, show_all: bool, as_json: bool) -> None:
    """Each plan's day and, per provider group, today's allowance, used and remaining."""
    now = _as_of(as_of)
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        plans = plan_status(session, now=now, include_stopped=show_all)
        waiting = waiting_by_campaign(session)
    if as_json:
        emit({"plans": plans, "waiting": waiting}, True)
        return
    if not plans:
        click.echo("no warm-up plan: start one with `sendwell warmup start`")
    for plan in plans:
        click.echo(_describe(plan))
    for row in waiting:
        click.echo(f"campaign {row['campaign_id']} “{row['name']}”: {row['waiting']} waiting for warm-up")


def _describe(plan: dict[str, Any]) -> str:
    head = f"warm-up #{plan['id']} of {plan['kind']} {plan['target']}, started {plan['start_date']}: "
    if plan["state"] == "active":
        head += f"day {plan['day']} of {plan['days']}"
    elif plan["state"] == "scheduled":
        head += f"starts in {1 - plan['day']} day(s)"
    elif plan["state"] == "ended":
        head += f"ended after day {plan['days']} (no limit now)"
    else:
        head += f"stopped {plan['stopped_at'][:16].replace('T', ' ')} UTC"
    lines = [head]
    if plan["state"] == "active":
        lines.append(f"  {'provider group':<16}{'allowance':>10}{'used':>8}{'remaining':>11}")
        for g in plan["groups"]:
            name = "every other" if g["group"] == EVERY_GROUP else g["group"]
            limit = "no limit" if g["allowance"] is None else g["allowance"]
            remaining = "-" if g["remaining"] is None else g["remaining"]
            lines.append(f"  {name:<16}{limit:>10}{g['used']:>8}{remaining:>11}")
    return "\n".join(lines)


@warmup.command("start")
@click.option("--domain", default=None, help="The sending domain to warm up (default: the From address's).")
@click.option("--ip", default=None, help="A sending IP to warm up instead of a domain.")
@click.option("--schedule", default=None, metavar="LIST",
              help="Mails per provider group per day, e.g. 50,100,200; per group after ';': google=20,40,80 "
                   "(default: SENDWELL_WARMUP_SCHEDULE, else the built-in 30-day schedule).")
@click.option("--start-date", "start_date", default=None, metavar="DATE", help="The plan's first day (default: today, UTC).")
@json_option
def warmup_start(domain: str | None, ip: str | None, schedule: str | None, start_date: str | None,
                 as_json: bool) -> None:
    """Start a warm-up plan; mail over a day's allowance waits for the next day."""
    if domain and ip:
        fail("give --domain or --ip, not both")
    try:
        first = date.fromisoformat(start_date) if start_date else datetime.now(timezone.utc).date()
    except ValueError:
        fail(f"--start-date {start_date!r} is not a date (YYYY-MM-DD)")
    runtime = get_runtime()
    if ip is not None:
        try:
            kind, target = "ip", str(ipaddress.ip_address(ip.strip()))
        except ValueError:
            fail(f"--ip {ip!r} is not an IPv4 or IPv6 address")
    else:
        kind, target = "domain", (domain or runtime.settings.sender_domain).strip().lower().rstrip(".")
        if not _DOMAIN.match(target):
            fail(f"--domain {target!r} is not a domain name")
    try:
        days = parse_schedule(schedule) if schedule is not None else default_schedule(runtime.settings.warmup_schedule)
        with transaction(runtime.factory) as session:
            plan = start_plan(session, target=target, kind=kind, schedule=days, start=first)
            status = plan_status(session, now=max(plan.starts_at, datetime.now(timezone.utc)))
    except WarmupError as exc:
        fail(str(exc))
    started = next(p for p in status if p["id"] == plan.id)
    if kind == "domain" and target != runtime.settings.sender_domain.lower():
        echo_err(f"note: mail is sent from {runtime.settings.sender_domain} (SENDWELL_FROM); "
                 "the plan limits all of it whatever its domain")
    overall = days[EVERY_GROUP]
    emit(started, as_json, f"warm-up plan #{plan.id} started for {kind} {target} on {first.isoformat()}: "
                           f"{overall[0]} mails per provider group on day 1, up to {overall[-1]} on day "
                           f"{len(overall)}, then no limit")


@warmup.command("stop")
@click.option("--id", "plan_id", type=int, default=None, help="The plan's number (see `warmup status`).")
@click.option("--domain", default=None)
@click.option("--ip", default=None)
@json_option
def warmup_stop(plan_id: int | None, domain: str | None, ip: str | None, as_json: bool) -> None:
    """Stop a warm-up plan; when none is left, mail waiting for warm-up goes at the next scan."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            plan, released = stop_plan(session, plan_id=plan_id, target=domain or ip)
            result = {"id": plan.id, "kind": plan.target_kind, "target": plan.target, "released": released}
    except WarmupError as exc:
        fail(str(exc))
    tail = f"; {released} mails waiting for warm-up go out at the next scan" if released else ""
    emit(result, as_json, f"stopped warm-up plan #{plan.id} of {plan.target_kind} {plan.target}{tail}")


def _as_of(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        return parse_as_of(value)
    except ValueError as exc:
        fail(str(exc))
