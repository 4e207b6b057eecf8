"""Helpers every CLI command shares: settings, --json output, one-line failures."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from sendwell.config import Settings, load_settings


def get_settings(ctx: click.Context | None = None) -> Settings:
    """The settings object built once at the entry point (lazily, so --help needs none)."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "settings" not in root.obj:
        try:
            root.obj["settings"] = load_settings()
        except Exception as exc:  # pydantic's message names the variable at fault
            raise click.ClickException(f"invalid settings: {_one_line(exc)}") from exc
    return root.obj["settings"]


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the --json flag every command honours."""
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(func)


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print JSON (one object per line) or the human text."""
    if as_json:
        click.echo(json.dumps(data, default=str, ensure_ascii=False))
    elif human is not None:
        click.echo(human)


def fail(message: str) -> NoReturn:
    """Exit non-zero with a one-line reason."""
    raise click.ClickException(_one_line(message))


def _one_line(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text[:500]


def echo_err(message: str) -> None:
    click.echo(message, file=sys.stderr)
