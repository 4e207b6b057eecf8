"""`sendwell feedback`: classify bounces, complaints and auto-replies from files."""

from __future__ import annotations

import click

from sendwell.cli.common import emit, fail, json_option
from sendwell.feedback.classify import Classification, classify_file


@click.group()
def feedback() -> None:
    """Inbound feedback: bounces, complaints, auto-replies."""


@feedback.command("classify")
@json_option
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
def classify(files: tuple[str, ...], as_json: bool) -> None:
    """Classify raw messages or provider JSON payloads, one result per file (or per event)."""
    results: list[tuple[str, Classification]] = []
    for name in files:
        try:
            found = classify_file(name)
        except OSError as exc:
            fail(f"{name}: {exc.strerror or exc}")
        results.extend((name, item) for item in found)
        if not found:  # a JSON payload with no event we understand still gets a line
            results.append((name, Classification(kind="other", reason="no recognised event")))
    if as_json:
        for name, item in results:
            emit(item.to_json(name), as_json=True)
        return
    emit(None, as_json=False, human=_table(results))


def _table(results: list[tuple[str, Classification]]) -> str:
    header = ("FILE", "KIND", "STATUS", "RECIPIENTS", "REASON")
    rows = [
        (name, item.kind, item.status or "-", ",".join(item.recipients) or "-", _flags(item))
        for name, item in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _flags(item: Classification) -> str:
    extras = [name for name, on in (("sender fault", item.is_sender_fault), ("delay", item.is_delay)) if on]
    return f"{item.reason} [{', '.join(extras)}]" if extras else item.reason
