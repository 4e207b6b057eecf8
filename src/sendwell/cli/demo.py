"""`sendwell demo`."""

from __future__ import annotations

import time
from pathlib import Path

import click

from sendwell.cli.common import emit, fail, json_option


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("sendwell-demo"),
              show_default=True, help="A demo folder; recreated on every run.")
@click.option("--contacts", default=1200, show_default=True, help="How many synthetic buyers to seed.")
@json_option
def demo(data_dir: Path, contacts: int, as_json: bool) -> None:
    """Run the whole mission on the embedded default with loopback SMTP and HTTP."""
    from sendwell.demo.run import format_summary, run_demo

    started = time.monotonic()
    say = (lambda _msg: None) if as_json else click.echo
    try:
        result = run_demo(data_dir, contacts=contacts, say=say)
    except RuntimeError as exc:
        fail(str(exc))
    result.summary["seconds"] = round(time.monotonic() - started, 1)
    emit(result.summary, as_json, format_summary(result.summary) + f"\n(done in {result.summary['seconds']} s)")
