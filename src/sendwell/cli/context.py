"""The per-command runtime, with a clear failure when `sendwell init` was never run."""

from __future__ import annotations

import click
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from sendwell.cli.common import fail, get_settings
from sendwell.runtime import Runtime


def get_runtime(ready: bool = True) -> Runtime:
    """The runtime for this command; with `ready`, fail clearly if `init` was never run."""
    ctx = click.get_current_context()
    settings = get_settings(ctx)  # also creates root.obj
    root = ctx.find_root()
    if "runtime" not in root.obj:
        root.obj["runtime"] = Runtime(settings)
        ctx.call_on_close(root.obj["runtime"].dispose)
    runtime: Runtime = root.obj["runtime"]
    if ready:
        try:
            tables = set(inspect(runtime.engine).get_table_names())
        except Exception as exc:
            fail(f"cannot open the database {safe_url(runtime.settings.effective_database_url)}: {exc}")
        if "alembic_version" not in tables:
            fail("the database is not initialised: run `sendwell init` first")
        runtime.load_stored_settings()  # the settings saved in the admin: environment > database > sendwell.env
        try:
            runtime.settings.secret_keys
        except RuntimeError as exc:
            fail(str(exc))
    return runtime


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


