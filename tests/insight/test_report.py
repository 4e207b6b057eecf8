"""`sendwell report`: JSON, CSV and the self-contained HTML file, computed from stored events."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

from click.testing import CliRunner
from sqlalchemy import select

from sendwell.cli.main import cli, register_commands
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.insight.tracking import record_click
from tests.insight.test_alerts import add_events, make_sent_campaign
from tests.insight.test_machines import BROWSER, SAFE_LINKS

register_commands()


def cli_env(runtime) -> dict[str, str]:
    """The settings of the test runtime, as a `sendwell` process reads them."""
    s = runtime.settings
    return {"SENDWELL_DATA_DIR": str(s.data_dir), "SENDWELL_DATABASE_URL": s.effective_database_url,
            "SENDWELL_SECRET_KEY": s.secret_key, "SENDWELL_HASH_PEPPER": s.hash_pepper}


def test_report_outputs(runtime, tmp_path) -> None:
    with transaction(runtime.factory) as s:
        campaign, contacts = make_sent_campaign(
            s, delivered=200, status="finished", name="Autumn <launch>", finished_at=datetime.now(timezone.utc),
            contact_fields=lambda i: {"country": "FR" if i < 50 else "US"})
        add_events(s, campaign, contacts[:50], "unsubscribed", 3)
        add_events(s, campaign, contacts[60:], "bounced", 2, kind="hard")
        campaign_id = campaign.id
    env = cli_env(runtime)
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
    env = cli_env(runtime)
    result = CliRunner().invoke(cli, ["report", "--campaign", "999"], env=env)
    assert result.exit_code != 0 and result.output.strip() == "Error: no campaign with id 999"


def test_report_table_shows_machine_clicks_beside_clicks(runtime) -> None:
    with transaction(runtime.factory) as s:
        campaign, _ = make_sent_campaign(s, delivered=4, status="finished", name="Spring")
        first, second, third, _ = s.scalars(select(Send.id).where(Send.campaign_id == campaign.id).order_by(Send.id))
        record_click(s, send_id=first, url="https://x.example/a", user_agent=BROWSER, ip="203.0.113.7")
        record_click(s, send_id=second, url="https://x.example/a", user_agent=SAFE_LINKS, ip="203.0.113.8")
        record_click(s, send_id=third, url="https://x.example/a", user_agent="python-requests/2.32")
        campaign_id = campaign.id
    env = cli_env(runtime)
    result = CliRunner().invoke(cli, ["report", "--campaign", str(campaign_id)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # The Campaigns table comes first; its header spans two lines ("machine" over "clicks").
    lines = result.output.splitlines()
    head = [[c.strip() for c in line.split("┃")] for line in lines[:lines.index(next(x for x in lines if "┡" in x))]
            if "┃" in line]
    header = [" ".join(filter(None, parts)) for parts in zip(*head)]
    row = [c.strip() for c in next(line for line in lines if line.startswith("│")).split("│")]
    cells = dict(zip(header, row))
    assert (cells["campaign"], cells["sent"], cells["clicks"], cells["machine clicks"]) == ("Spring", "4", "1", "2")
    assert "opens" not in result.output  # no open pixel, no opens columns
    data = json.loads(CliRunner().invoke(cli, ["report", "--campaign", str(campaign_id), "--json"], env=env).output)
    assert (data["campaigns"][0]["clicked"], data["campaigns"][0]["machine_clicked"]) == (1, 2)


def test_report_csv_neutralises_formula_cells(runtime, tmp_path) -> None:
    # A campaign name (or an audience value) a spreadsheet would run as a formula stays text in the CSV.
    name = '=HYPERLINK("http://evil")'
    with transaction(runtime.factory) as s:
        campaign, _ = make_sent_campaign(s, delivered=5, status="finished", name=name,
                                         finished_at=datetime.now(timezone.utc),
                                         contact_fields=lambda i: {"industry": "@SUM(1+1)"})
        campaign_id = campaign.id
    out_csv = tmp_path / "r.csv"
    result = CliRunner().invoke(cli, ["report", "--campaign", str(campaign_id), "--csv", str(out_csv)],
                                env=cli_env(runtime), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert rows[0]["dimension"] == "campaign" and rows[0]["key"] == "'" + name
    keys = [r["key"] for r in rows]
    assert "'@SUM(1+1)" in keys  # an audience value typed by someone else, neutralised too
    assert not [k for k in keys if k.startswith(("=", "+", "-", "@", "\t", "\r"))], keys
