"""`sendwell report`: JSON, CSV and the self-contained HTML file, computed from stored events."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

from click.testing import CliRunner

from sendwell.cli.main import cli, register_commands
from sendwell.db.session import transaction
from tests.insight.test_alerts import add_events, make_sent_campaign

register_commands()


def test_report_outputs(runtime, tmp_path) -> None:
    with transaction(runtime.factory) as s:
        campaign, contacts = make_sent_campaign(
            s, delivered=200, status="finished", name="Autumn <launch>", finished_at=datetime.now(timezone.utc),
            contact_fields=lambda i: {"country": "FR" if i < 50 else "US"})
        add_events(s, campaign, contacts[:50], "unsubscribed", 3)
        add_events(s, campaign, contacts[60:], "bounced", 2, kind="hard")
        campaign_id = campaign.id
    s = runtime.settings
    env = {"SENDWELL_DATA_DIR": str(s.data_dir), "SENDWELL_DATABASE_URL": s.effective_database_url,
           "SENDWELL_SECRET_KEY": s.secret_key, "SENDWELL_HASH_PEPPER": s.hash_pepper}
    out_csv, out_html = tmp_path / "r.csv", tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", "--campaign", str(campaign_id), "--json", "--csv", str(out_csv),
                                      "--html", str(out_html)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (row,) = data["campaigns"]
    assert (row["delivered"], row["unsubscribed"], row["hard_bounced"]) == (200, 3, 2)
    assert row["unsubscribe_rate"] == 0.015
    eu = next(r for r in data["by"]["region"] if r["key"] == "eu")
    assert (eu["delivered"], eu["unsubscribed"]) == (50, 3)
    # 1.5 % is above the critical threshold: the report's check raised it, naming France / the EU.
    (alert,) = data["alerts"]
    assert alert["severity"] == "critical"
    assert "country = FR" in alert["message"] or "region = eu" in alert["message"]
    day = next(d for d in data["over_time"] if d["day"] == "2026-11-01")  # the day the test data was sent
    assert (day["delivered"], day["unsubscribed"]) == (200, 3)
    rows = list(csv.DictReader(out_csv.open()))
    assert rows[0]["dimension"] == "campaign" and rows[0]["unsubscribed"] == "3"
    page = out_html.read_text()
    assert "<svg" in page and "Autumn &lt;launch&gt;" in page and "<script" not in page


def test_report_for_a_missing_campaign_is_one_line(runtime) -> None:
    s = runtime.settings
    env = {"SENDWELL_DATA_DIR": str(s.data_dir), "SENDWELL_DATABASE_URL": s.effective_database_url,
           "SENDWELL_SECRET_KEY": s.secret_key, "SENDWELL_HASH_PEPPER": s.hash_pepper}
    result = CliRunner().invoke(cli, ["report", "--campaign", "999"], env=env)
    assert result.exit_code != 0 and result.output.strip() == "Error: no campaign with id 999"
