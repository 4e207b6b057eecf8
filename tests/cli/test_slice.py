"""The foundation slice through the real `sendwell` commands, and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from sendwell.cli.main import cli, register_commands
from sendwell.config import load_settings
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import one_click_url, parse_strict

register_commands()

CSV = ("email,first_name,company,country,industry,stage,language\n"
       "anna@licht.example,Anna,Licht GmbH,DE,lighting,prospect,de\n"
       "jean@lumiere.example,Jean,Lumière SARL,France,lighting,customer,fr\n"
       "joe@bulbs.example,Joe,Bulbs Inc,US,lighting,customer,en\n")


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str | None]:
    return {
        "SENDWELL_DATA_DIR": str(tmp_path / "data"),
        "SENDWELL_DATABASE_URL": db_url,
        "SENDWELL_BASE_URL": "http://127.0.0.1:1",
        # None unsets: keys must come from the data folder's config file that `init` writes.
        "SENDWELL_SECRET_KEY": None,
        "SENDWELL_HASH_PEPPER": None,
        "SENDWELL_SMTP_URL": None,
        "SENDWELL_QUEUE_URL": None,
    }


def run(env: dict[str, str], *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.mark.both_backends  # `init` migrates and every command runs on PostgreSQL too
def test_the_whole_slice(tmp_path, env, smtp_server, unused_port) -> None:
    env["SENDWELL_SMTP_URL"] = smtp_server.url
    env["SENDWELL_BASE_URL"] = f"http://127.0.0.1:{unused_port}"
    init = json.loads(run(env, "init", "--json").output)
    assert init["created"]["secret_key"] and "dkim" in init["created"]
    (tmp_path / "c.csv").write_text(CSV)
    run(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express", "--source", "Canton Fair")
    (tmp_path / "mail.html").write_text("<p>Hello {{ first_name }}</p>")
    created = run(env, "campaigns", "create", "--name", "Spring", "--subject", "New panels",
                  "--html", str(tmp_path / "mail.html"), "--segment", "region = eu", "--json")
    first_id = json.loads(created.output)["id"]
    sent = json.loads(run(env, "campaigns", "send", str(first_id), "--wait", "--json").output)
    assert sent["states"]["sent"] == 2 and sent["status"] == "finished"
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["anna@licht.example", "jean@lumiere.example"]

    # The one-click POST against `serve`'s app on the same data, as a mailbox provider sends it.
    anna_mail = next(parse_strict(m.data) for m in smtp_server.messages if m.rcpt_tos[0] == "anna@licht.example")
    # `serve`'s app over the same data folder: keys come from the config file `init` wrote.
    runtime = Runtime(load_settings(data_dir=Path(env["SENDWELL_DATA_DIR"]), database_url=env["SENDWELL_DATABASE_URL"],
                                    base_url=env["SENDWELL_BASE_URL"]))
    with BackgroundServer(create_app(runtime), unused_port):
        response = httpx.post(one_click_url(anna_mail), data={"List-Unsubscribe": "One-Click"})
    runtime.dispose()
    assert response.status_code == 200

    second = run(env, "campaigns", "create", "--name", "Summer", "--subject", "More",
                 "--html", str(tmp_path / "mail.html"), "--segment", "region = eu", "--json")
    second_id = json.loads(second.output)["id"]
    run(env, "campaigns", "send", str(second_id), "--wait")
    status = json.loads(run(env, "campaigns", "status", str(second_id), "--json").output)
    assert status["states"]["sent"] == 1
    assert status["skipped"] == {"unsubscribed": 1}
    assert len(smtp_server.messages) == 3


def test_malformed_csv_row_is_one_line_and_keeps_what_is_stored(tmp_path, env) -> None:
    run(env, "init")
    (tmp_path / "good.csv").write_text("email,country\nkeep@me.example,DE\n")
    run(env, "contacts", "import", str(tmp_path / "good.csv"))
    (tmp_path / "bad.csv").write_text("email,country\nnew@me.example,DE\nbroken-address,DE\n")
    result = run(env, "contacts", "import", str(tmp_path / "bad.csv"), ok=False)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "row 3, field 'email'" in lines[0] and "nothing was imported" in lines[0]
    out = tmp_path / "out.csv"
    run(env, "contacts", "export", str(out))
    assert "keep@me.example" in out.read_text() and "new@me.example" not in out.read_text()


def test_unknown_segment_field_is_one_line(tmp_path, env) -> None:
    run(env, "init")
    (tmp_path / "m.html").write_text("<p>x</p>")
    result = run(env, "campaigns", "create", "--name", "n", "--subject", "s", "--html", str(tmp_path / "m.html"),
                 "--segment", "favourite_colour = blue", ok=False)
    assert result.exit_code != 0
    assert result.output.strip() == (
        "Error: --segment: unknown segment field 'favourite_colour' at position 1 (known fields: industry, stage, "
        "country, region, language, company, job_title, tag, topic, email_domain, consent, hygiene, custom.<name>)"
    )


def test_unreachable_smtp_server_is_one_line_and_mail_is_deferred(tmp_path, env, unused_port) -> None:
    env["SENDWELL_SMTP_URL"] = f"smtp://127.0.0.1:{unused_port}"
    run(env, "init")
    (tmp_path / "c.csv").write_text(CSV)
    run(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express")
    (tmp_path / "m.html").write_text("<p>x</p>")
    cid = json.loads(run(env, "campaigns", "create", "--name", "n", "--subject", "s", "--html",
                         str(tmp_path / "m.html"), "--json").output)["id"]
    result = run(env, "campaigns", "send", str(cid), "--wait", ok=False)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach SMTP server 127.0.0.1:{unused_port}" in lines[0]
    status = json.loads(run(env, "campaigns", "status", str(cid), "--json").output)
    assert status["states"]["deferred"] == 3 and "deferred" in lines[0]


def test_commands_before_init_say_so(env) -> None:
    result = run(env, "campaigns", "status", "1", ok=False)
    assert result.exit_code != 0
    assert "run `sendwell init` first" in result.output
