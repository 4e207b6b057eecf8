"""Tests for the `feedback classify` command."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sendwell.cli.feedback import feedback

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_json_one_line_per_file() -> None:
    files = [str(FIXTURES / "dsn_auth_rejected.eml"), str(FIXTURES / "ses_complaint.json")]
    result = CliRunner().invoke(feedback, ["classify", "--json", *files])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(d["file"], d["kind"]) for d in lines] == [(files[0], "soft"), (files[1], "complaint")]
    assert lines[0]["recipients"] == ["reader@outlook.example.com"]
    assert lines[0]["status"] == "5.7.515"
    assert lines[0]["is_sender_fault"] is True
    assert set(lines[1]) >= {"file", "kind", "recipients", "status", "reason"}


def test_json_one_line_per_event_for_multi_event_payloads() -> None:
    name = str(FIXTURES / "sendgrid_events.json")
    result = CliRunner().invoke(feedback, ["classify", "--json", name])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 5
    assert {d["file"] for d in lines} == {name}
    assert [d["kind"] for d in lines] == ["hard", "soft", "soft", "complaint", "hard"]


def test_table_is_aligned() -> None:
    files = [str(FIXTURES / "dsn_delayed.eml"), str(FIXTURES / "ses_bounce_permanent.json")]
    result = CliRunner().invoke(feedback, ["classify", *files])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["FILE", "KIND", "STATUS", "RECIPIENTS", "REASON"]
    kind_column = lines[0].index("KIND")
    assert [line[kind_column:].split()[0] for line in lines[1:]] == ["soft", "hard"]
    assert "delay" in lines[1]
    assert "jane.doe@example.com" in lines[2]


def test_unreadable_file_fails_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.eml"
    result = CliRunner().invoke(feedback, ["classify", "--json", str(missing)])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [f"Error: {missing}: No such file or directory"]


def test_directory_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(feedback, ["classify", str(tmp_path)])
    assert result.exit_code != 0
    assert result.output.startswith(f"Error: {tmp_path}: ")
