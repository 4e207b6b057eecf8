"""`sendwell demo` runs the whole mission against real loopback servers."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sendwell.cli.main import _register, cli

_register()


def test_demo_runs_the_mission(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "demo"), "--contacts", "300", "--json"],
                                env={"SENDWELL_SECRET_KEY": None, "SENDWELL_DATABASE_URL": None},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    first, second = summary["campaigns"]
    assert first["states"]["sent"] > 100
    assert sum(summary["unsubscribed"].values()) == 6
    # Suppression wins over every other reason; the follow-up also meets the prospects'
    # default cap (1 per 7 days), so they are skipped as frequency_cap (issue 4).
    assert second["skipped"]["unsubscribed"] == 6
    assert set(second["skipped"]) == {"unsubscribed", "frequency_cap"}
    assert second["states"]["sent"] == first["states"]["sent"] - 6 - second["skipped"]["frequency_cap"]
    # The demo's own policy step: a capped prospect and a paused customer, with their reasons.
    assert [c["skip_reason"] for c in summary["policy"]["contacts"]] == ["frequency_cap", "paused"]
    assert summary["policy"]["campaign"]["skipped"] == {"frequency_cap": 1, "paused": 1}
    assert summary["checks"] == {"get_status": 200, "repeat_post_status": 200}
    assert summary["mails_received"] == first["states"]["sent"] + second["states"]["sent"]
    assert len(list((tmp_path / "demo" / "received").glob("*.eml"))) == summary["mails_received"]


def test_demo_refuses_to_wipe_a_folder_it_did_not_make(tmp_path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "precious")])
    assert result.exit_code != 0 and "not a demo folder" in result.output
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
