"""`sendwell segments …`: saved segments and live counts."""

from __future__ import annotations

import click

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction
from sendwell.segments.expression import SegmentError
from sendwell.segments.service import (
    count_segment,
    create_segment,
    delete_segment,
    describe,
    get_segment,
    list_segments,
)


@click.group()
def segments() -> None:
    """Save, count and show segments (rules over contacts; campaigns use them as --segment @name)."""


@segments.command("create")
@click.argument("name")
@click.argument("expression")
@click.option("--replace", is_flag=True, help="Change the rule of an existing segment.")
@json_option
def segments_create(name: str, expression: str, replace: bool, as_json: bool) -> None:
    """Save a segment: EXPRESSION is text (`region = eu and stage = prospect`) or JSON."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            segment = create_segment(session, name=name, expression=expression, replace=replace)
            out = describe(segment) | count_segment(session, expression=segment.expression)
    except SegmentError as exc:
        fail(f"segment {name!r}: {exc}")
    emit(out, as_json, f"saved segment {name!r}: {out['expression']}\n"
                       f"  {out['matching']} contacts match, {out['reachable']} reachable now")


@segments.command("list")
@json_option
def segments_list(as_json: bool) -> None:
    """List saved segments."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        rows = [describe(s) for s in list_segments(session)]
    emit(rows, as_json, "\n".join(f"{r['name']}: {r['expression']}" for r in rows) or "no saved segments")


@segments.command("show")
@click.argument("name")
@json_option
def segments_show(name: str, as_json: bool) -> None:
    """Show a saved segment's rule (text and JSON) and its live counts."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            segment = get_segment(session, name=name)
            out = describe(segment) | count_segment(session, expression=segment.expression)
    except SegmentError as exc:
        fail(str(exc))
    emit(out, as_json, f"{out['name']}: {out['expression']}\n"
                       f"  matching {out['matching']}, suppressed {out['suppressed']}, "
                       f"no lawful basis {out['no_lawful_basis']}, reachable {out['reachable']}")


@segments.command("count")
@click.argument("expression")
@json_option
def segments_count(expression: str, as_json: bool) -> None:
    """Count the contacts of a rule (or of `@saved-name`) right now."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            out = count_segment(session, expression=expression)
    except SegmentError as exc:
        fail(f"segment: {exc}")
    emit(out, as_json, f"matching {out['matching']}, suppressed {out['suppressed']}, "
                       f"no lawful basis {out['no_lawful_basis']}, reachable {out['reachable']}")


@segments.command("delete")
@click.argument("name")
@json_option
def segments_delete(name: str, as_json: bool) -> None:
    """Forget a saved segment (campaigns keep their own copy of the rule)."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            delete_segment(session, name=name)
    except SegmentError as exc:
        fail(str(exc))
    emit({"deleted": name}, as_json, f"deleted segment {name!r}")
