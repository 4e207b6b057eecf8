"""`sendwell sequences create|dry-run|run|report|pause|resume` from a YAML file, on SQLite."""

from __future__ import annotations

import json

from tests.conftest import sqlite_only
from tests.policy.test_cli_policy import CSV, env, run

__all__ = ["env"]
pytest_generate_tests = sqlite_only

YAML = """
name: Fair 2026 follow-up
trigger: {kind: contact_created, source: fair}
steps:
  - id: thanks
    kind: mail
    subject: Thank you for visiting, {{ first_name }}
    html: <p>Dear {{ first_name }}, thank you for visiting our stand.</p>
  - id: wait-3d
    kind: wait
    days: 3
  - id: catalogue
    kind: mail
    subject: Our catalogue
    html: <p>Dear {{ first_name }}, here is our catalogue.</p>
exit: {replied: true}
"""


def test_create_dry_run_run_and_report(env, tmp_path) -> None:
    run(env, "init")
    (tmp_path / "fair.yaml").write_text(YAML)
    sequence_id = json.loads(run(env, "sequences", "create", str(tmp_path / "fair.yaml"), "--json").output)["id"]
    (tmp_path / "c.csv").write_text(CSV)
    run(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express", "--source", "fair")

    would = json.loads(run(env, "sequences", "dry-run", str(sequence_id), "--json").output)
    assert sorted(c["email"] for c in would["contacts"]) == ["anna@licht.example", "jean@lumiere.example"]
    assert json.loads(run(env, "sequences", "dry-run", str(sequence_id), "--json").output)["would_enter"] == 2

    ran = json.loads(run(env, "sequences", "run", "--json").output)
    assert (ran["entered"], ran["steps"], ran["queued"]) == (2, {"thanks": 2, "wait-3d": 2}, 2)
    assert json.loads(run(env, "sequences", "run", "--json").output)["steps"] == {}  # waiting 3 days
    # Three days on: the customer's second mail is queued; the prospect's (one a week) waits for the cap.
    again = json.loads(run(env, "sequences", "run", "--as-of", "2099-01-01", "--json").output)
    assert (again["entered"], again["steps"], again["queued"]) == (0, {"catalogue": 2}, 1)

    listed = json.loads(run(env, "sequences", "list", "--json").output)["sequences"]
    assert [(q["id"], q["name"], q["status"], q["enrollments"]) for q in listed] == [
        (sequence_id, "Fair 2026 follow-up", "active", {"active": 1, "done": 1})]
    assert f"{sequence_id}  Fair 2026 follow-up (active, version 1) — contact_created source=fair" in run(
        env, "sequences", "list").output

    report = json.loads(run(env, "sequences", "report", str(sequence_id), "--json").output)
    assert [(s["id"], s["runs"], s["waited"]) for s in report["steps"]] == [
        ("thanks", 2, 0), ("wait-3d", 2, 0), ("catalogue", 2, 1)]
    assert "thanks [mail] runs 2" in run(env, "sequences", "report", str(sequence_id)).output

    assert "nobody enters and no step runs" in run(env, "sequences", "pause", "--help").output
    assert "is paused" in run(env, "sequences", "pause", str(sequence_id)).output
    assert json.loads(run(env, "sequences", "run", "--json").output)["steps"] == {}
    assert "is active" in run(env, "sequences", "resume", str(sequence_id)).output
    assert run(env, "sequences", "report", "999", ok=False).exit_code == 1
    (tmp_path / "bad.yaml").write_text("name: x\ntrigger: {kind: moon}\nsteps: []\n")
    bad = run(env, "sequences", "create", str(tmp_path / "bad.yaml"), ok=False)
    assert bad.exit_code == 1 and "trigger.kind" in bad.output
