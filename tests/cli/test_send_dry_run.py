"""`sendwell campaigns send --dry-run [--json]`: the plan printed, nothing changed; a send to nobody finishes."""

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


def test_dry_run_prints_the_plan_the_send_then_follows(env, tmp_path) -> None:
    run(env, "init")
    (tmp_path / "c.csv").write_text(CSV)
    run(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express", "--source", "fair")
    run(env, "campaigns", "send", str(_campaign(env, tmp_path)), "--wait")  # the prospect's one mail this week
    campaign_id = _campaign(env, tmp_path)

    plan = json.loads(run(env, "campaigns", "send", str(campaign_id), "--dry-run", "--json").output)
    assert (plan["recipients"], plan["now"], plan["contacts"]) == (1, 1, 2)
    assert plan["skipped"] == {"frequency_cap": 1} and plan["skipped_total"] == 1 and plan["deferred"] == {}
    assert plan["by_region"] == {"eu": 1} and plan["by_language"] == {"fr": 1}
    assert plan["blocked"] is False and plan["campaign_id"] == campaign_id
    human = run(env, "campaigns", "send", str(campaign_id), "--dry-run").output
    assert "dry run, nothing changed: campaign" in human and "would go to 1 of the segment's 2 contacts" in human
    assert "skipped 1: frequency_cap 1" in human and "by language: fr 1" in human
    status = json.loads(run(env, "campaigns", "status", str(campaign_id), "--json").output)
    assert status["status"] == "draft" and status["total"] == 0

    sent = json.loads(run(env, "campaigns", "send", str(campaign_id), "--wait", "--json").output)
    assert sent["states"]["sent"] == plan["recipients"] and sent["skipped"] == plan["skipped"]


def test_a_send_to_nobody_finishes_and_says_why(env, tmp_path) -> None:
    run(env, "init")
    campaign_id = _campaign(env, tmp_path, "--segment", "country = JP")
    out = run(env, "campaigns", "send", str(campaign_id)).output
    assert "finished, 0 recipients" in out and "sent to nobody: the segment matched no contact" in out
    assert run(env, "campaigns", "send", str(campaign_id), "--dry-run", ok=False).exit_code == 1  # finished
