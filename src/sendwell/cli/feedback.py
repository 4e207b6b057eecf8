"""`sendwell feedback`: classify bounces, complaints and auto-replies from files."""

from __future__ import annotations

import signal
import threading
from collections import Counter

import click

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction
from sendwell.feedback.classify import Classification, classify_file
from sendwell.feedback.dmarc_store import SourceTable, source_table
from sendwell.feedback.inbound import HostileMessage, check_structure, process_inbound
from sendwell.feedback.listener import FeedbackListener
from sendwell.feedback.sources import SourceError, open_source


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


@feedback.command("ingest")
@json_option
@click.argument("path", required=False)
@click.option("--imap", "imap_url", help="Read unseen mail from imaps://user:password@host/INBOX instead.")
def ingest(path: str | None, imap_url: str | None, as_json: bool) -> None:
    """Process stored inbound mail: a maildir folder, an mbox file, one .eml file, or an IMAP mailbox."""
    if bool(path) == bool(imap_url):
        fail("give either a PATH (maildir or mbox) or --imap URL")
    runtime = get_runtime()
    location = imap_url or str(path)
    actions: Counter[str] = Counter()
    messages = 0
    try:
        kind, items = open_source(location, runtime.settings)
        for item in items:
            try:
                check_structure(item.raw)  # a MIME tree no real mail has: refused, as the listener does
            except HostileMessage:
                item.done()
                messages += 1
                actions["refused_hostile"] += 1
                continue
            # One transaction per message: a failure later on keeps what was already decided.
            with transaction(runtime.factory) as session:
                results = process_inbound(session, raw=item.raw, rcpt_to=item.rcpt_to,
                                          settings=runtime.settings, source=kind)
            item.done()
            messages += 1
            actions.update(r.action for r in results)
    except SourceError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{location}: {exc.strerror or exc}")
    result = {"source": kind, "messages": messages, "actions": dict(sorted(actions.items()))}
    human = f"{messages} messages from the {kind}: " + (
        ", ".join(f"{k} {v}" for k, v in sorted(actions.items())) or "nothing to do")
    emit(result, as_json, human)


@feedback.command("listen")
@click.option("--host", default=None, help="Address to listen on (default SENDWELL_INBOUND_HOST).")
@click.option("--port", default=None, type=int, help="Port (default SENDWELL_INBOUND_PORT, 2525).")
def listen(host: str | None, port: int | None) -> None:
    """Receive bounces, mailto unsubscribes and replies over SMTP until interrupted."""
    runtime = get_runtime()
    listener = FeedbackListener(runtime.factory, runtime.settings, host=host, port=port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        listener.start()
    except Exception as exc:
        fail(f"cannot listen on {listener.host}:{listener.port}: {exc}")
    click.echo(f"Listening on {listener.url} for {', '.join(runtime.settings.inbound_domain_list)}; "
               "Ctrl-C stops.", err=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()


@feedback.command("dmarc")
@json_option
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660),
              help="Reports whose period ended in the last N days.")
def dmarc(days: int, as_json: bool) -> None:
    """Per sending source (IP) from the DMARC aggregate reports: volume, SPF / DKIM pass and alignment, disposition."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        table = source_table(session, settings=runtime.settings, days=days)
    result = {"days": days, "reports": table.reports, "messages": table.messages,
              "sources": [row.to_json() for row in table.sources]}
    emit(result, as_json, _dmarc_table(table))


def _dmarc_table(table: SourceTable) -> str:
    if not table.sources:
        return f"No DMARC aggregate report in the last {table.days} days."
    header = ("SOURCE", "MESSAGES", "SPF", "DKIM", "SPF ALIGNED", "DKIM ALIGNED", "DMARC", "DISPOSITION", "STATUS")
    rows = [(row.source_ip + (" (ours)" if row.known else ""), str(row.messages), f"{row.rate(row.spf_pass):.1%}",
             f"{row.rate(row.dkim_pass):.1%}", f"{row.rate(row.spf_aligned):.1%}",
             f"{row.rate(row.dkim_aligned):.1%}", f"{row.rate(row.dmarc_pass):.1%}",
             " ".join(f"{k} {v}" for k, v in sorted(row.dispositions.items())),
             "FAILING" if row.failing else ("dkim unaligned" if row.dkim_failing else "ok"))
            for row in table.sources]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.append(f"{table.reports} reports, {table.messages} messages in the last {table.days} days.")
    return "\n".join(lines)
