"""How many delivery processes `campaigns send --wait` and `serve` run: SENDWELL_DELIVERY_PROCESSES and --processes."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from sendwell.cli.main import cli, register_commands
from sendwell.cli.processes import cores, delivery_processes
from sendwell.config import load_settings

register_commands()


def _settings(**values):
    return load_settings(secret_key="s" * 32, **values)


def test_auto_is_one_per_core_of_this_process_affinity(monkeypatch) -> None:
    monkeypatch.delenv("SENDWELL_DELIVERY_PROCESSES", raising=False)  # tests/conftest.py sets 1 for the suite
    assert cores() == len(os.sched_getaffinity(0))
    for value in ("auto", 0):
        assert delivery_processes(_settings(delivery_processes=value)) == (cores(), f"auto, {cores()} core"
                                                                            + ("s" if cores() != 1 else ""))
    assert _settings().delivery_processes == "auto"  # the default


def test_a_number_is_taken_as_given_and_the_option_wins() -> None:
    assert delivery_processes(_settings(delivery_processes=1)) == (1, "SENDWELL_DELIVERY_PROCESSES")
    assert delivery_processes(_settings(delivery_processes=3), 5) == (5, "--processes")
    assert delivery_processes(_settings(delivery_processes=3), 0)[0] == cores()


@pytest.mark.parametrize("value", ["-1", "many", "257"])
def test_a_bad_setting_is_refused_naming_it(value: str, monkeypatch) -> None:
    monkeypatch.setenv("SENDWELL_DELIVERY_PROCESSES", value)
    with pytest.raises(Exception, match="delivery_processes"):
        load_settings()


def test_processes_without_wait_is_refused() -> None:
    result = CliRunner().invoke(cli, ["campaigns", "send", "1", "--processes", "2"])
    assert result.exit_code != 0 and "--processes applies only with --wait" in result.output
