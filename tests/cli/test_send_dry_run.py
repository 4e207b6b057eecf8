"""`sendwell campaigns send --dry-run [--json]`: the plan printed, nothing changed; a send to nobody finishes."""

from __future__ import annotations

import json

from tests.policy.test_cli_policy import CSV, _campaign, env, run

__all__ = ["env"]  # the fixture, shared with the frequency-policy CLI tests


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
