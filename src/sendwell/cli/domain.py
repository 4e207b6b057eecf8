"""`sendwell domain check`: SPF, DKIM, DMARC alignment, bounce MX, reverse DNS of the sender domain."""

from __future__ import annotations

import re
from typing import Any, NoReturn

import click
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from sendwell.cli.common import emit, fail, get_settings, json_option
from sendwell.cli.context import get_runtime
from sendwell.content.service import ComplianceError
from sendwell.db.session import transaction
from sendwell.deliverability.check import (
    BLOCKING,
    INFO,
    PASS,
    WARNING,
    DomainReport,
    check_domain,
    sending_ips,
)
from sendwell.deliverability.service import cached_check

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))+$")
EXIT_BLOCKING = 1
EXIT_INCOMPLETE = 75  # EX_TEMPFAIL, as `campaigns send --wait` uses it: DNS did not answer, try again


@click.group()
def domain() -> None:
    """The sender domain's DNS: what receivers check, and the records to publish."""


@domain.command("check")
@click.option("--domain", "name", default=None, metavar="DOMAIN",
              help="The From domain to check (default: the domain of SENDWELL_FROM).")
@json_option
def domain_check(name: str | None, as_json: bool) -> None:
    """Check SPF, DKIM, DMARC and their alignment, the bounce MX and reverse DNS.

    Exit 0 when nothing blocks, 1 when a finding blocks bulk sending, 75 when DNS did not
    answer for part of the check (nothing concluded: run it again).
    """
    settings = get_settings()
    if name is not None:
        name = name.strip().lower().rstrip(".")
        if not _DOMAIN.match(name):
            raise click.BadParameter(f"{name!r} is not a domain name", param_hint="--domain")
    try:
        sending_ips(settings)
    except ValueError as exc:
        fail(str(exc))
    report = _run(settings, name)
    emit(report.as_dict(), as_json, render(report))
    if report.blocking:
        raise click.exceptions.Exit(EXIT_BLOCKING)
    if not report.complete:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


def _run(settings: Any, name: str | None) -> DomainReport:
    """Checked now; kept in the database (for the admin and the send gate) when it has the table."""
    runtime = get_runtime(ready=False)
    try:
        stored = "domain_checks" in inspect(runtime.engine).get_table_names()
    except SQLAlchemyError:  # no database yet: the check itself needs none
        stored = False
    if not stored:
        return check_domain(settings, domain=name)
    with transaction(runtime.factory) as session:
        return cached_check(session, settings, domain=name, max_age=0)


def render(report: DomainReport) -> str:
    facts = report.facts
    head = (f"Sender domain {report.domain} (organisational domain {facts.get('organisational_domain')}, "
            f"Return-Path {facts.get('return_path_domain')}, DKIM d={facts.get('dkim_domain') or '-'}, "
            f"DNS: {facts.get('nameservers')})")
    lines = [head]
    lines += [f.line() for f in report.findings]
    counts = {s: len(report.of(s)) for s in (BLOCKING, WARNING, INFO, PASS)}
    verdict = ("blocks bulk sending: publish the records above" if report.blocking else
               "incomplete: DNS did not answer, run the check again" if not report.complete else
               "ready for bulk sending")
    lines.append(f"{counts[BLOCKING]} blocking, {counts[WARNING]} warnings, {counts[INFO]} info, {counts[PASS]} passed: "
                 f"{verdict}")
    return "\n".join(lines)


def print_refusal(exc: ComplianceError, as_json: bool) -> NoReturn:
    """Exit 1 for a send the sender-domain gate refused: one line per blocking finding, each with its fix."""
    if as_json:
        emit({"error": str(exc), **exc.report.as_dict()}, True)
    else:
        for finding in exc.report.errors:
            click.echo(finding.line(), err=True)
        click.echo(f"Error: {exc}", err=True)
    raise click.exceptions.Exit(EXIT_BLOCKING) from exc
