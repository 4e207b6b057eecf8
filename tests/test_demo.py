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
    assert second["skipped"] == {"unsubscribed": 6}
    assert second["states"]["sent"] == first["states"]["sent"] - 6
    assert summary["checks"] == {"get_status": 200, "repeat_post_status": 200}
    assert summary["mails_received"] == first["states"]["sent"] + second["states"]["sent"]
    assert len(list((tmp_path / "demo" / "received").glob("*.eml"))) == summary["mails_received"]


def test_demo_refuses_to_wipe_a_folder_it_did_not_make(tmp_path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "precious")])
    assert result.exit_code != 0 and "not a demo folder" in result.output
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_demo_audience_part(tmp_path) -> None:
    """Topics, several consent kinds, an XLSX import, a multi-condition saved segment, export, erasure."""
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "demo"), "--contacts", "200", "--json"],
                                env={"SENDWELL_SECRET_KEY": None, "SENDWELL_DATABASE_URL": None},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    audience = json.loads(result.output)["audience"]
    assert audience["topics"] == ["led-lighting", "smart-home", "product-launches"]
    assert set(audience["consent_kinds"]) == {"express", "implied_inquiry", "implied_purchase",
                                              "legitimate_interest_b2b", "soft_opt_in"}
    assert audience["xlsx_imported"] == 36
    # DE B2B legitimate interest, lapsed CA inquiries and CN soft opt-in have no basis.
    assert audience["fair_leads"]["no_lawful_basis"] == 9
    assert " and " in audience["segment"]["expression"] and audience["segment"]["matching"] > 0
    assert audience["exported"] == audience["contacts_before_export"] - 6
    assert audience["erasure"]["reimport_kept_out"] == 1 and audience["erasure"]["reimport_created"] == 0
