"""`sendwell campaigns create --over-cap` and `status --json` with the frequency policy, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sendwell.cli.main import cli, register_commands

register_commands()

CSV = ("email,first_name,company,country,industry,stage,language\n"
       "anna@licht.example,Anna,Licht GmbH,DE,lighting,prospect,de\n"
       "jean@lumiere.example,Jean,Lumière SARL,France,lighting,customer,fr\n")


@pytest.fixture
def env(tmp_path: Path, db_url: str, smtp_server) -> dict[str, str | None]:
    return {"SENDWELL_DATA_DIR": str(tmp_path / "data"), "SENDWELL_DATABASE_URL": db_url,
            "SENDWELL_SMTP_URL": smtp_server.url, "SENDWELL_SECRET_KEY": None, "SENDWELL_HASH_PEPPER": None,
            "SENDWELL_QUEUE_URL": None, "SENDWELL_STAGE_CAPS": None, "SENDWELL_SEND_WINDOW": None}


def run(env, *args, ok=True):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _campaign(env, tmp_path, *extra) -> int:
    (tmp_path / "mail.html").write_text("<p>Hello {{ first_name }}</p>")
    out = run(env, "campaigns", "create", "--name", "N", "--subject", "S", "--html", str(tmp_path / "mail.html"),
              "--json", *extra)
    return json.loads(out.output)["id"]


def test_status_shows_frequency_skips_and_deferrals(env, tmp_path) -> None:
    run(env, "init")
    (tmp_path / "c.csv").write_text(CSV)
    run(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express", "--source", "fair")
    first = _campaign(env, tmp_path)
    assert json.loads(run(env, "campaigns", "send", str(first), "--wait", "--json").output)["states"]["sent"] == 2

    skipping = _campaign(env, tmp_path)
    status = json.loads(run(env, "campaigns", "send", str(skipping), "--wait", "--json").output)
    assert status["skipped"] == {"frequency_cap": 1} and status["states"]["sent"] == 1  # the customer: 2 of 3

    deferring = _campaign(env, tmp_path, "--over-cap", "defer")
    waited = run(env, "campaigns", "send", str(deferring), "--wait", ok=False)
    # Not 0: one mail is unsent; 75 says it waits for the time printed, not for an operator.
    assert waited.exit_code == 75, waited.output
    assert "not sent: 1 deferred until" in waited.output and "(frequency_cap)" in waited.output
    status = json.loads(run(env, "campaigns", "status", str(deferring), "--json").output)
    assert status["skipped"] == {} and status["deferred"] == {"frequency_cap": 1}
    assert status["status"] == "sending"  # the prospect's mail waits for its week to pass
    human = run(env, "campaigns", "status", str(deferring)).output
    assert "waiting: frequency_cap 1" in human


def test_configured_caps_apply_and_a_bad_setting_is_one_line(env, tmp_path) -> None:
    run(env, "init")
    (tmp_path / "c.csv").write_text(CSV)
    run(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express", "--source", "fair")
    env["SENDWELL_STAGE_CAPS"] = "prospect=5/7d,customer=1/30d"
    run(env, "campaigns", "send", str(_campaign(env, tmp_path)), "--wait")
    status = json.loads(run(env, "campaigns", "send", str(_campaign(env, tmp_path)), "--wait", "--json").output)
    assert status["skipped"] == {"frequency_cap": 1}  # now the customer is capped, not the prospect

    env["SENDWELL_STAGE_CAPS"] = "prospect=1 per week"
    bad = run(env, "campaigns", "status", "1", ok=False)
    assert bad.exit_code != 0
    assert "SENDWELL_STAGE_CAPS" in bad.output and "'prospect=1 per week'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    bad = run(env, "campaigns", "create", "--name", "x", "--subject", "y", "--html", str(tmp_path / "mail.html"),
              "--over-cap", "later", ok=False)
    assert bad.exit_code != 0 and "later" in bad.output
