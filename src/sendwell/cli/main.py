"""The `sendwell` console entry point: a thin Click adapter over the service functions."""

from __future__ import annotations

import click

from sendwell import __version__


@click.group()
@click.version_option(__version__, prog_name="sendwell")
def cli() -> None:
    """Sendwell: email campaigns that treat the unsubscribe as a first-class signal."""


def _register() -> None:
    # Each command group lives in its own module; registering here keeps imports lazy-ish
    # and lets contexts grow their own commands without touching each other.
    from sendwell.cli import commands

    for command in commands.ALL:
        cli.add_command(command)


def main() -> None:
    _register()
    cli(prog_name="sendwell")
