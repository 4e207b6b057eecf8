"""`sendwell sequences …`: lifecycle sequences from a YAML or JSON file; advance, report, pause, dry-run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sendwell.campaigns.service import CampaignError
from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.cli.domain import print_refusal
from sendwell.cli.hygiene import parse_as_of
from sendwell.content.render import TemplateError
from sendwell.content.service import ComplianceError
from sendwell.db.session import transaction
from sendwell.insight.sequence_steps import reasons_by_step, step_recommendations
from sendwell.sequences.definition import DefinitionError, load_text
from sendwell.sequences.service import (
    SequenceError,
    advance,
    create_sequence,
    describe,
    dry_run,
    get_sequence,
    list_sequences,
    resume_step,
    sender_domain_findings,
    set_status,
    step_report,
    update_sequence,
)
from sendwell.sequences.templates import list_templates, load_template
from sendwell.worker.queue import Queue


@click.group()
def sequences() -> None:
    """Lifecycle sequences: a trigger enrols contacts, steps mail, wait, branch and set fields (docs/sequences.md)."""


def _assignments(_ctx: click.Context, _param: click.Parameter, pairs: tuple[str, ...]) -> dict[str, str]:
    if any("=" not in pair for pair in pairs):
        raise click.BadParameter("write KEY=VALUE, e.g. --set tag=canton-2026")
    return dict(pair.split("=", 1) for pair in pairs)


@sequences.command("create")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--template", metavar="NAME", help="A ready-made sequence (`sequences templates`) instead of FILE.")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE", callback=_assignments,
              help="With --template: one of its values, e.g. --set tag=canton-2026 (repeatable).")
@json_option
def sequences_create(file: Path | None, template: str | None, values: dict[str, str], as_json: bool) -> None:
    """Create a sequence from a YAML or JSON file or a ready-made one; its mails pass the campaigns' checks first."""
    if (file is None) == (template is None) or (values and template is None):
        raise click.UsageError("give either FILE or --template NAME (its values with --set KEY=VALUE)")
    runtime = get_runtime()
    source = file.name if file is not None else f"template {template}"
    try:
        data = load_text(file.read_text(encoding="utf-8")) if file is not None else load_template(str(template), values)
        with transaction(runtime.factory) as session:
            sequence = create_sequence(session, settings=runtime.settings, data=data)
            out = {"id": sequence.id, "findings": sender_domain_findings(session, settings=runtime.settings)}
            name = sequence.name
    except (DefinitionError, SequenceError, CampaignError, TemplateError) as exc:
        fail(f"{source}: {exc}")
    except ComplianceError as exc:
        print_refusal(exc, as_json)
    emit(out, as_json, f"created sequence {out['id']} ({name})" + _domain_lines(out["findings"]))


@sequences.command("templates")
@json_option
def sequences_templates(as_json: bool) -> None:
    """The ready-made sequences and their values; `create --template NAME --set KEY=VALUE` makes one."""
    out = list_templates()
    lines = []
    for template in out:
        lines += [f"{template['name']}: {template['title']}", f"    {template['description']}",
                  "    values: " + ", ".join(f"{k}={'(required)' if v is None else v if v != '' else '(empty)'}"
                                           for k, v in template["values"].items())]
    emit(out, as_json, "\n".join(lines))


@sequences.command("update")
@click.argument("sequence_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def sequences_update(sequence_id: int, file: Path, as_json: bool) -> None:
    """Edit a sequence into its next version; contacts in flight keep their place by step id."""
    runtime = get_runtime()
    try:
        data = load_text(file.read_text(encoding="utf-8"))
        with transaction(runtime.factory) as session:
            out = describe(session, update_sequence(session, settings=runtime.settings, sequence_id=sequence_id,
                                                    data=data))
    except (DefinitionError, SequenceError, CampaignError, TemplateError) as exc:
        fail(f"{file.name}: {exc}")
    except ComplianceError as exc:
        print_refusal(exc, as_json)
    emit(out, as_json, f"sequence {sequence_id} is now version {out['version']}")


@sequences.command("run")
@click.option("--as-of", "as_of", default=None, metavar="TIME",
              help="Advance as of this day or ISO 8601 time (default: now).")
@json_option
def sequences_run(as_of: str | None, as_json: bool) -> None:
    """Enrol, apply exits and run every due step now; the mails are queued for the worker."""
    runtime = get_runtime()
    try:
        now = parse_as_of(as_of) if as_of else None
    except ValueError as exc:
        fail(str(exc))
    queue = Queue(runtime)
    queue.check()
    with transaction(runtime.factory) as session:
        report = advance(session, settings=runtime.settings, now=now)
    batches: list[tuple[int, list[int]]] = report.pop("batches")
    for campaign_id, batch in batches:
        queue.enqueue_batches(campaign_id, [batch])
    report["queued"] = sum(len(b) for _, b in batches)
    emit(report, as_json, f"entered {report['entered']}, exited {sum(report['exited'].values())}, "
                          f"steps run {sum(report['steps'].values())}, mails queued {report['queued']}")


def _with_sequence(sequence_id: int, action: Any) -> dict[str, Any]:
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            return action(session)
    except (SequenceError, DefinitionError) as exc:
        fail(str(exc))


@sequences.command("report")
@click.argument("sequence_id", type=int)
@json_option
def sequences_report(sequence_id: int, as_json: bool) -> None:
    """Per step: runs, mail steps' sent, opened, … bounced with rates, open alert and leavers' reasons; then advice."""
    out = _with_sequence(sequence_id, lambda s: {
        **step_report(s, sequence_id=sequence_id), "reasons": reasons_by_step(s, sequence_id=sequence_id),
        "recommendations": [r.as_dict() for r in step_recommendations(s, sequence_id=sequence_id)]})
    lines = [_heading(out)]
    for step in out["steps"]:
        line = f"  {step['id']} [{step['kind']}] runs {step['runs']}, waited {step['waited']}"
        if step["kind"] == "mail":
            line += f", sent {step['sent']}" + "".join(
                f", {k} {step[k]}" + (f" ({step[k + '_rate']:.1%})" if step[k + "_rate"] is not None else "")
                for k in ("opened", "clicked", "replied", "unsubscribed", "complained", "bounced"))
            line += " — PAUSED" if step["paused"] else ""
            if step.get("alert"):
                alert = step["alert"]
                line += f" — {alert['severity']} alert since {alert['created_at'][:16]}: {alert['message']}"
        lines.append(line)
        if out["reasons"].get(step["id"]):
            lines.append("    reasons: " + ", ".join(f"{k} {v}" for k, v in out["reasons"][step["id"]].items()))
    lines += [f"  → {r['title']}: {r['why']}" for r in out["recommendations"]]
    emit(out, as_json, "\n".join(lines))


def _domain_lines(findings: list[dict[str, Any]]) -> str:
    """The sender-domain findings as warnings; a blocking one holds the mail steps until it is fixed."""
    return "".join(f"\nwarning: {f['message']}" + (" Mail steps wait until this is fixed."
                                                    if f["severity"] == "blocking" else "") for f in findings)


def _status_command(name: str, status: str, help_text: str) -> None:
    @sequences.command(name, help=help_text)
    @click.argument("sequence_id", type=int)
    @json_option
    def command(sequence_id: int, as_json: bool) -> None:
        settings = get_runtime().settings  # before the transaction: a first get_runtime opens the database
        out = _with_sequence(sequence_id, lambda s: {
            **describe(s, set_status(s, sequence_id=sequence_id, status=status)),
            "findings": sender_domain_findings(s, settings=settings) if status == "active" else []})
        emit(out, as_json, f"sequence {sequence_id} is {out['status']}" + _domain_lines(out["findings"]))


_status_command("pause", "paused", "Pause a sequence: nobody enters and no step runs; contacts keep their place.")
_status_command("resume", "active", "Resume a paused sequence; prints the sender-domain findings that hold mail steps.")


@sequences.command("list")
@json_option
def sequences_list(as_json: bool) -> None:
    """Every sequence: id, name, status, version, trigger and enrollments by state."""
    with transaction(get_runtime().factory) as session:
        out = {"sequences": [describe(session, q) for q in list_sequences(session)]}
    lines = [f"{q['id']:>4}  {q['name']} ({q['status']}, version {q['version']}) — {_trigger_words(q['trigger'])}; "
             f"{_enrolled(q['enrollments'])}" for q in out["sequences"]]
    emit(out, as_json, "\n".join(lines) or "no sequences yet: sendwell sequences create FILE (or --template NAME)")


def _enrolled(counts: dict[str, int]) -> str:
    """`active 3, done 12, exited 1`, or that nobody has entered yet."""
    return ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "nobody entered yet"


def _heading(sequence: dict[str, Any]) -> str:
    return f"{sequence['name']} ({sequence['status']}, version {sequence['version']}): {_enrolled(sequence['enrollments'])}"


def _trigger_words(trigger: dict[str, Any] | None) -> str:
    """`tag_added tag=fair-2026`: the trigger's kind and its settings."""
    trigger = dict(trigger or {})
    kind = trigger.pop("kind", "?")
    return " ".join([kind, *(f"{k}={v}" for k, v in trigger.items())])


@sequences.command("resume-step")
@click.argument("sequence_id", type=int)
@click.argument("step_id")
@json_option
def sequences_resume_step(sequence_id: int, step_id: str, as_json: bool) -> None:
    """Resume a mail step its unsubscribe or complaint spike paused (its open alerts are resolved)."""
    out = _with_sequence(sequence_id, lambda s: {"campaigns": resume_step(s, sequence_id=sequence_id, step_id=step_id)})
    emit(out, as_json, f"step {step_id} of sequence {sequence_id} sends again")


@sequences.command("dry-run")
@click.argument("sequence_id", type=int)
@json_option
def sequences_dry_run(sequence_id: int, as_json: bool) -> None:
    """Who would enter the sequence now; nothing is written."""
    out = _with_sequence(sequence_id, lambda s: dry_run(s, sequence_id=sequence_id))
    emit(out, as_json, f"{out['would_enter']} would enter: " + ", ".join(c["email"] for c in out["contacts"][:20]))


@sequences.command("show")
@click.argument("sequence_id", type=int)
@json_option
def sequences_show(sequence_id: int, as_json: bool) -> None:
    """A sequence's status, version, trigger and enrollments by state."""
    out = _with_sequence(sequence_id, lambda s: describe(s, get_sequence(s, sequence_id=sequence_id)))
    emit(out, as_json, _heading(out))
