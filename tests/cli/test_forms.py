"""`sendwell forms create|list|show|embed`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sendwell.cli.main import cli, register_commands
from sendwell.contacts.records import create_topic
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from tests.conftest import TEST_PEPPER, TEST_SECRET

register_commands()


def invoke(runtime: Runtime, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["forms", *args], env={
        "SENDWELL_DATA_DIR": str(runtime.settings.data_dir), "SENDWELL_DATABASE_URL": runtime.settings.effective_database_url,
        "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER,
        "SENDWELL_BASE_URL": "https://mail.bright-lighting.example"})


def test_create_list_show_and_embed(runtime) -> None:
    with transaction(runtime.factory) as s:
        create_topic(s, slug="led-news", name="LED news")
    made = invoke(runtime, "create", "--name", "Canton Fair", "--topic", "led-news", "--field", "company",
                  "--language", "zh_Hans", "--json")
    assert made.exit_code == 0, made.output
    form_id = json.loads(made.output)["id"]
    refused = invoke(runtime, "create", "--name", "x", "--topic", "nope")
    assert refused.exit_code == 1 and "no topic nope" in refused.output
    listed = json.loads(invoke(runtime, "list", "--json").output)
    assert [(f["id"], f["name"], f["counts"]) for f in listed] == [
        (form_id, "Canton Fair", {"pending": 0, "confirmed": 0, "expired": 0})]
    shown = json.loads(invoke(runtime, "show", str(form_id), "--json").output)
    assert shown["fields"] == ["email", "company"] and shown["consent_version"] == 1
    snippet = invoke(runtime, "embed", str(form_id)).output
    assert f'action="https://mail.bright-lighting.example/f/{form_id}"' in snippet
    assert 'name="url"' in snippet and 'name="company"' in snippet and 'value="led-news"' in snippet
    assert "<script" not in snippet and "邮箱" in snippet  # the form's language
    assert invoke(runtime, "embed", "99").exit_code == 1
