"""`sendwell campaigns lint|preview ID` and the send path's gate; the `campaigns` group adds them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.content.render import TemplateError
from sendwell.content.service import ComplianceError, ContentError, assert_sendable, lint_campaign, preview_campaign
from sendwell.db.session import transaction
from sendwell.segments.expression import SegmentError


def refuse_unsendable(session: Any, settings: Any, campaign_id: int, as_json: bool) -> None:
    """The send path's gate: print one line per blocking finding and exit 1, or return."""
    try:
        assert_sendable(session, settings=settings, campaign_id=campaign_id)
    except ContentError as exc:
        fail(str(exc))
    except ComplianceError as exc:
        if as_json:
            emit({"error": str(exc), **exc.report.as_dict()}, True)
        else:
            for finding in exc.report.errors:
                click.echo(finding.line(), err=True)
            click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(1) from exc


@click.command("lint")
@click.argument("campaign_id", type=int)
@json_option
def campaigns_lint(campaign_id: int, as_json: bool) -> None:
    """Compliance (blocking) and readability (warning) findings; exit 1 if anything blocks."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            report = lint_campaign(session, settings=runtime.settings, campaign_id=campaign_id)
    except ContentError as exc:
        fail(str(exc))
    summary = (f"campaign {campaign_id}: {len(report.errors)} blocking, {len(report.warnings)} warnings "
               f"(samples: {', '.join(report.samples)})")
    emit(report.as_dict(), as_json, "\n".join([*report.lines(), summary]))
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command("preview")
@click.argument("campaign_id", type=int)
@click.option("--contact", "contact_email", default=None, help="Render for this contact's email address.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write <label>.eml and <label>.html files here.")
@json_option
def campaigns_preview(campaign_id: int, contact_email: str | None, out_dir: Path | None, as_json: bool) -> None:
    """Render the campaign for one contact, or one sample per region and language."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            previews = preview_campaign(session, settings=runtime.settings, campaign_id=campaign_id,
                                        contact_email=contact_email)
    except (ContentError, TemplateError, SegmentError) as exc:
        fail(str(exc))
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for preview in previews:
                if "eml" not in preview:
                    continue
                stem = _file_stem(campaign_id, preview)
                eml, html = out_dir / f"{stem}.eml", out_dir / f"{stem}.html"
                eml.write_bytes(preview["eml"].encode("ascii"))
                html.write_text(preview["html"], encoding="utf-8")
                preview["files"] = [str(eml), str(html)]
        except OSError as exc:
            fail(f"--out {out_dir}: {exc.strerror or exc}")
    if as_json:
        emit({"campaign_id": campaign_id, "previews": previews}, True)
        return
    lines = []
    for preview in previews:
        contact = preview["contact"]
        who = "synthetic sample" if contact["synthetic"] else contact["email"]
        if "error" in preview:
            lines.append(f"[{preview['label']}] {who}: cannot render: {preview['error']}")
            continue
        lines.append(f"[{preview['label']}] {who} — Subject: {preview['subject']} ({preview['size']} bytes)")
        lines.extend(f"    {f['severity']} {f['code']}: {f['message']}" for f in preview["findings"])
        lines.extend(f"    wrote {path}" for path in preview.get("files", []))
        if out_dir is None and contact_email:
            lines.append(preview["text"])
    emit(None, False, "\n".join(lines))
    if any("error" in p for p in previews):
        raise click.exceptions.Exit(1)


def _file_stem(campaign_id: int, preview: dict[str, Any]) -> str:
    who = "sample" if preview["contact"]["synthetic"] else preview["contact"]["email"]
    return re.sub(r"[^A-Za-z0-9@._-]+", "-", f"campaign-{campaign_id}-{preview['label']}-{who}")
