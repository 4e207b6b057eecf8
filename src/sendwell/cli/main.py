"""The `sendwell` console entry point: a thin Click adapter over the service functions."""

from __future__ import annotations

import importlib

import click

from sendwell import __version__
from sendwell.cli.commands import COMMANDS


class LazyGroup(click.Group):
    """A group that imports a command's module when the command is first asked for (Click's lazy recipe).

    Each command module imports its contexts, the web app or the worker at its top; loading
    every module up front would make each `sendwell …` call pay for all of them.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, _, attribute = COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="sendwell")
def cli() -> None:
    """Sendwell: email campaigns that treat the unsubscribe as a first-class signal."""


def register_commands() -> None:
    """Load every command now (tests walk the whole tree; the entry point loads them on demand)."""
    ctx = click.Context(cli)
    for name in COMMANDS:
        cli.get_command(ctx, name)




def main() -> None:
    cli(prog_name="sendwell")
