"""Lint and preview over the database and through `sendwell campaigns lint|preview|send`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sendwell.campaigns.service import create_campaign
from sendwell.cli.main import cli, register_commands
from sendwell.content.service import ComplianceError, assert_sendable, lint_campaign, preview_campaign
from sendwell.db.session import transaction
from tests.helpers import make_contact, parse_strict

register_commands()


def _create(session, settings, html="<p>Dear {{ contact.first_name }}</p>", subject="New panels", segment=""):
    return create_campaign(session, settings=settings, name="c", subject=subject, html=html, segment=segment).id


@pytest.fixture
def db_settings(runtime, dkim_key_file):
    runtime.replace_settings(runtime.settings.replace(
        dkim_domain="bright-lighting.example", dkim_key_file=str(dkim_key_file),
        privacy_url="https://bright-lighting.example/privacy"))
    return runtime.settings


def test_lint_samples_one_contact_per_region_and_language(runtime, db_settings) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", language="de", source="Fair")
        make_contact(s, country="AT", language="de-AT", source="Fair")  # same mail as de
        make_contact(s, country="US", language="en")
        make_contact(s, country="CN", language="zh-CN")
        html = '<p>Hi</p>{% region "us" %}{{ contact.custom.size }}{% endregion %}'
        campaign_id = _create(s, db_settings, html=html)
    with transaction(runtime.factory) as s:
        report = lint_campaign(s, settings=db_settings, campaign_id=campaign_id)
    assert report.samples == ["cn/zh_Hans", "eu/de", "us/en"]  # China is its own region
    assert [(f.code, f.samples) for f in report.errors] == [("unknown-variable", ("us/en",))]
    assert not report.ok


def test_lint_renders_every_country_stage_and_industry_branch(runtime, db_settings) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", language="de", source="Fair")
        make_contact(s, country="FR", language="de", source="Fair")  # same region/language as the first
        make_contact(s, country="DE", language="de", source="Fair", stage="customer", industry="furniture")
        html = '<p>Hi</p>{% country "FR" %}<div style="display:none">{% endcountry %}'
        campaign_id = _create(s, db_settings, html=html)
    with transaction(runtime.factory) as s:
        report = lint_campaign(s, settings=db_settings, campaign_id=campaign_id)
        previews = preview_campaign(s, settings=db_settings, campaign_id=campaign_id)
    assert report.samples == ["eu/de"] and report.rendered == 3
    assert [f.code for f in report.errors] == ["unsubscribe-hidden"]
    assert len(previews) == 1  # previews stay one per region × language


def test_an_empty_segment_is_linted_on_synthetic_samples(runtime, db_settings) -> None:
    with transaction(runtime.factory) as s:
        report = lint_campaign(s, settings=db_settings, campaign_id=_create(s, db_settings))
    assert report.samples == ["ca/fr", "eu/de", "other/zh_Hans", "uk/en", "us/en"]
    assert report.ok and report.findings == []


def test_send_gate_raises_with_the_findings(runtime, db_settings) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", source="")
        campaign_id = _create(s, db_settings, subject="Fwd: prices")
        with pytest.raises(ComplianceError, match="1 blocking finding") as info:
            assert_sendable(s, settings=db_settings, campaign_id=campaign_id)
    lines = info.value.report.lines()
    assert lines[0].startswith("error [COMPLIANCE #16] deceptive-subject")
    assert any("data-source" in line and "GDPR Art 14(2)(f)" in line for line in lines)


def test_preview_for_a_contact_and_per_sample(runtime, db_settings) -> None:
    with transaction(runtime.factory) as s:
        anna = make_contact(s, country="DE", language="de", source="Canton Fair 2026", email="anna@licht.example")
        make_contact(s, country="US", language="en")
        campaign_id = _create(s, db_settings)
    with transaction(runtime.factory) as s:
        one = preview_campaign(s, settings=db_settings, campaign_id=campaign_id, contact_email="ANNA@licht.example")
        every = preview_campaign(s, settings=db_settings, campaign_id=campaign_id)
    assert [p["contact"]["id"] for p in one] == [anna.id]
    msg = parse_strict(one[0]["eml"].encode("ascii"))
    assert "Canton Fair 2026" in msg.get_body(("plain",)).get_content()
    assert "/u/preview-eu-de" in one[0]["html"]  # never a real token
    assert [p["label"] for p in every] == ["eu/de", "us/en"]
    json.dumps(every)  # plain data, ready for the web UI


# ---- CLI ------------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path: Path, db_url: str, smtp_server) -> dict[str, str | None]:
    return {
        "SENDWELL_DATA_DIR": str(tmp_path / "data"), "SENDWELL_DATABASE_URL": db_url,
        "SENDWELL_BASE_URL": "https://mail.bright-lighting.example", "SENDWELL_SECRET_KEY": None,
        "SENDWELL_HASH_PEPPER": None, "SENDWELL_FROM": "Ningbo Bright Lighting <sales@bright-lighting.example>",
        "SENDWELL_COMPANY_NAME": "Ningbo Bright Lighting Co., Ltd.",
        "SENDWELL_POSTAL_ADDRESS": "88 Jiangnan Road, Ningbo 315040, China",
        "SENDWELL_CONTACT_EMAIL": "sales@bright-lighting.example",
        "SENDWELL_SMTP_URL": smtp_server.url, "SENDWELL_QUEUE_URL": None,
        "SENDWELL_PRIVACY_URL": "https://bright-lighting.example/privacy",
    }


def run(env, *args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


CSV = ("email,first_name,company,country,language\n"
       "anna@licht.example,Anna,Licht GmbH,DE,de\njoe@bulbs.example,Joe,Bulbs Inc,US,en\n")


def _setup(tmp_path, env, html="<p>Hello {{ contact.first_name }}</p>", subject="New panels") -> int:
    run(env, "init")
    (tmp_path / "c.csv").write_text(CSV)
    run(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express", "--source", "Canton Fair")
    (tmp_path / "m.html").write_text(html)
    out = run(env, "campaigns", "create", "--name", "n", "--subject", subject, "--html", str(tmp_path / "m.html"),
              "--json").output
    return json.loads(out)["id"]


def test_send_refuses_a_failing_campaign_with_one_line_per_finding(tmp_path, env, smtp_server) -> None:
    html = "<style>.sendwell-footer{display:none}</style><p>Hello {{ fist_name }}</p>"
    cid = _setup(tmp_path, env, html=html, subject="RE: your inquiry")
    result = run(env, "campaigns", "send", str(cid), "--wait", code=1)
    lines = result.output.strip().splitlines()
    assert lines[-1] == f"Error: campaign {cid} fails the compliance lint (3 blocking findings); nothing was sent"
    assert [line.split("]")[0] for line in lines[:-1]] == [  # errors ordered by rule
        "error [COMPLIANCE #9", "error [COMPLIANCE #16", "error [COMPLIANCE #24"]
    assert all(line.startswith("error [COMPLIANCE #") for line in lines[:-1])
    status = json.loads(run(env, "campaigns", "status", str(cid), "--json").output)
    assert status["total"] == 0 and status["status"] == "draft"
    assert smtp_server.messages == []
    as_json = json.loads(run(env, "campaigns", "send", str(cid), "--json", code=1).output)
    assert as_json["ok"] is False and {f["rule"] for f in as_json["findings"] if f["severity"] == "error"} == {9, 16, 24}


def test_lint_command_exit_codes_and_json(tmp_path, env) -> None:
    good = _setup(tmp_path, env)
    out = run(env, "campaigns", "lint", str(good)).output
    assert f"campaign {good}: 0 blocking, 0 warnings (samples: eu/de, us/en)" in out
    (tmp_path / "bad.html").write_text('<p>Hi</p><div style="display:none">')
    bad = json.loads(run(env, "campaigns", "create", "--name", "b", "--subject", "FREE SAMPLES NOW!!!",
                         "--html", str(tmp_path / "bad.html"), "--json").output)["id"]
    report = json.loads(run(env, "campaigns", "lint", str(bad), "--json", code=1).output)
    assert report["errors"] == 1 and report["findings"][0]["code"] == "unsubscribe-hidden"
    assert "capital-subject" in {f["code"] for f in report["findings"]}
    assert run(env, "campaigns", "lint", "999", code=1).output.strip() == "Error: no campaign with id 999"


def test_preview_command_writes_eml_and_html(tmp_path, env) -> None:
    cid = _setup(tmp_path, env)
    out_dir = tmp_path / "previews"
    result = json.loads(run(env, "campaigns", "preview", str(cid), "--out", str(out_dir), "--json").output)
    assert [p["label"] for p in result["previews"]] == ["eu/de", "us/en"]
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == [f"campaign-{cid}-eu-de-anna@licht.example.eml", f"campaign-{cid}-eu-de-anna@licht.example.html",
                     f"campaign-{cid}-us-en-joe@bulbs.example.eml", f"campaign-{cid}-us-en-joe@bulbs.example.html"]
    msg = parse_strict((out_dir / f"campaign-{cid}-eu-de-anna@licht.example.eml").read_bytes())
    assert "Abmelden" in msg.get_body(("plain",)).get_content()
    one = run(env, "campaigns", "preview", str(cid), "--contact", "joe@bulbs.example", "--out", str(out_dir)).output
    assert "joe@bulbs.example — Subject: New panels" in one and (out_dir / f"campaign-{cid}-us-en-joe@bulbs.example.eml").exists()
    missing = run(env, "campaigns", "preview", str(cid), "--contact", "nobody@x.example", code=1).output
    assert missing.strip() == "Error: no contact with email 'nobody@x.example'"


def test_warnings_alone_do_not_block_sending(tmp_path, env, smtp_server) -> None:
    cid = _setup(tmp_path, env, subject="FREE LED SAMPLES, ORDER NOW")
    lint = json.loads(run(env, "campaigns", "lint", str(cid), "--json").output)
    assert lint["ok"] and {"capital-subject", "spam-phrase"} <= {f["code"] for f in lint["findings"]}
    sent = json.loads(run(env, "campaigns", "send", str(cid), "--wait", "--json").output)
    assert sent["states"]["sent"] == 2 and len(smtp_server.messages) == 2
