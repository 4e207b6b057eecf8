"""Reads the deployment files (deploy/compose.yaml, deploy/systemd/*) into the commands they run."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import click
import yaml

from sendwell.cli.main import cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
UNITS = DEPLOY / "systemd"
ENV_EXAMPLE = DEPLOY / "sendwell.env.example"
SENDWELL_SERVICES = ("migrate", "web", "worker", "listener")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def unit(name: str) -> configparser.ConfigParser:
    # strict=False: systemd allows a key to repeat; interpolation off: units contain % specifiers.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNITS / name)
    return parser


def unit_command(name: str) -> list[str]:
    """ExecStart's arguments after the `sendwell` executable."""
    argv = shlex.split(unit(name)["Service"]["ExecStart"])
    assert Path(argv[0]).name == "sendwell", f"{name}: ExecStart runs {argv[0]}, not sendwell"
    return argv[1:]


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def resolve(args: list[str]) -> click.Command:
    """The sendwell command `args` names, its options parsed as the entry point would (raises on a bad one)."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="sendwell")
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest, f"{args}: names a command group, not a command"
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{args}: `{name}` is not a sendwell command"
        command, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    command.make_context(ctx.info_name, rest, parent=ctx.parent)  # raises click.UsageError on bad options
    return command


def local(args: list[str], ports: dict[int, int]) -> list[str]:
    """A container's command for this machine: loopback instead of every interface, free ports."""
    out = []
    for a in args:
        if a == "0.0.0.0":
            a = "127.0.0.1"
        for port, free in ports.items():
            a = a.replace(str(port), str(free))
        out.append(a)
    return out
