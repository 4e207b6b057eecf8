"""A sequence's mail steps each carry a campaign: left out of the campaign lists unless asked for, and
then naming their sequence and step (service, `campaigns list`, GET /api/v1/campaigns)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sendwell.campaigns.service import (
    create_campaign,
    list_campaigns,
    recent_campaigns,
    sequence_steps,
)
from sendwell.cli.main import cli, register_commands
from sendwell.db.session import transaction
from sendwell.delivery.dkim import generate_private_key
from sendwell.sequences.service import create_sequence
from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.web.api.conftest import auth, client, dkim_key_file  # noqa: F401  (the API's fixtures)

register_commands()
FAIR = {
    "name": "Fair follow-up",
    "trigger": {"kind": "tag_added", "tag": "fair-2026"},
    "steps": [
        {"id": "thanks", "kind": "mail", "subject": "Thank you", "html": "<p>Thank you for visiting us.</p>"},
        {"id": "wait-3d", "kind": "wait", "days": 3},
        {"id": "catalogue", "kind": "mail", "subject": "Our catalogue", "html": "<p>Our catalogue.</p>"},
    ],
}


def seed(runtime, key_file: str) -> tuple[int, dict[str, int]]:
    """A campaign and a sequence with two mail steps; returns the campaign's id and the steps' campaign ids."""
    runtime.replace_settings(runtime.settings.replace(
        dkim_domain=runtime.settings.sender_domain, dkim_key_file=key_file,
        privacy_url="https://bright-lighting.example/privacy"))
    with transaction(runtime.factory) as s:
        campaign_id = create_campaign(s, settings=runtime.settings, name="Spring", subject="Spring panels",
                                      html="<p>Our new panels.</p>").id
        sequence_id = create_sequence(s, settings=runtime.settings, data=FAIR).id
        found = sequence_steps(s, campaign_ids=[c.id for c in list_campaigns(s, include_sequences=True)])
    assert {v["sequence_id"] for v in found.values()} == {sequence_id}
    return campaign_id, {v["step"]: k for k, v in found.items()}


@pytest.fixture
def key_file(tmp_path) -> str:
    path = tmp_path / "dkim.pem"
    path.write_bytes(generate_private_key("ed25519"))
    return str(path)


def test_the_lists_leave_step_campaigns_out_unless_asked(runtime, key_file) -> None:
    campaign_id, steps = seed(runtime, key_file)
    assert set(steps) == {"thanks", "catalogue"}
    with transaction(runtime.factory) as s:
        assert [c.id for c in list_campaigns(s)] == [campaign_id]
        assert [c.id for c in recent_campaigns(s)] == [campaign_id]
        assert [c.id for c in list_campaigns(s, include_sequences=True)] == sorted([campaign_id, *steps.values()])
        assert {c.id for c in recent_campaigns(s, include_sequences=True)} == {campaign_id, *steps.values()}
        named = sequence_steps(s, campaign_ids=[campaign_id, steps["thanks"]])
    assert named == {steps["thanks"]: {"sequence_id": 1, "sequence": "Fair follow-up", "step": "thanks"}}


def test_cli_campaigns_list_shows_step_campaigns_with_include_sequences(runtime, key_file) -> None:
    campaign_id, steps = seed(runtime, key_file)
    env = {"SENDWELL_DATA_DIR": str(runtime.settings.data_dir), "SENDWELL_DATABASE_URL": runtime.settings.database_url,
           "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER, "SENDWELL_SMTP_URL": None,
           "SENDWELL_QUEUE_URL": None}

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["campaigns", "list", *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert [c["id"] for c in json.loads(run("--json"))] == [campaign_id]
    listed = {c["id"]: c for c in json.loads(run("--include-sequences", "--json"))}
    assert set(listed) == {campaign_id, *steps.values()}
    assert listed[campaign_id]["sequence"] is None
    assert listed[steps["catalogue"]]["sequence"] == {"sequence_id": 1, "sequence": "Fair follow-up",
                                                      "step": "catalogue"}
    assert "Fair follow-up" not in run()
    human = run("--include-sequences").splitlines()
    (line,) = [x for x in human if x.split()[0] == str(steps["thanks"])]
    assert "sequence 'Fair follow-up' #1, step thanks" in line


def test_api_lists_step_campaigns_only_with_include_sequences(runtime, client, auth, dkim_key_file) -> None:  # noqa: F811
    campaign_id, steps = seed(runtime, dkim_key_file)
    headers = auth("campaigns:read", "reports:read")
    default = client.get("/api/v1/campaigns", headers=headers)
    assert default.status_code == 200, default.text
    assert [c["id"] for c in default.json()["items"]] == [campaign_id]
    assert default.json()["items"][0]["sequence"] is None
    everything = client.get("/api/v1/campaigns", params={"include_sequences": "true"}, headers=headers).json()
    listed = {c["id"]: c for c in everything["items"]}
    assert set(listed) == {campaign_id, *steps.values()}
    assert listed[steps["thanks"]]["sequence"] == {"sequence_id": 1, "sequence": "Fair follow-up", "step": "thanks"}
    # A step campaign opened directly still answers, as does its report.
    assert client.get(f"/api/v1/campaigns/{steps['thanks']}", headers=headers).status_code == 200
    assert client.get("/api/v1/reports", params={"campaign_id": steps["thanks"]}, headers=headers).status_code == 200
