"""`sendwell settings list` says where each admin setting comes from; `sendwell settings import-env`
moves the values an older release wrote to sendwell.env from the admin into the database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sendwell.cli.main import cli, register_commands
from sendwell.config import write_config_values
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.settings_edit import stored_values, update_settings
from tests.conftest import TEST_PEPPER, TEST_SECRET

register_commands()


@pytest.fixture(autouse=True)
def _no_sendwell_env(monkeypatch) -> None:
    for name in ("SENDWELL_COMPANY_NAME", "SENDWELL_POSTAL_ADDRESS", "SENDWELL_WEBSITE", "SENDWELL_STAGE_CAPS"):
        monkeypatch.delenv(name, raising=False)


def invoke(runtime: Runtime, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["settings", *args], env={
        "SENDWELL_DATA_DIR": str(runtime.settings.data_dir), "SENDWELL_DATABASE_URL": runtime.settings.effective_database_url,
        "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER, **env})


def stored(runtime: Runtime) -> dict[str, str]:
    with runtime.factory() as session:
        return stored_values(session)


def test_import_env_stores_what_the_database_lacks_and_leaves_the_rest(runtime) -> None:
    write_config_values(runtime.settings.config_file, {"company_name": "Old Admin Edit Ltd.", "website": "https://old.example",
                                                       "smtp_url": "capture"})
    with transaction(runtime.factory) as session:
        update_settings(runtime.settings, {"website": "https://bright-lighting.example"}, session)
    result = invoke(runtime, "import-env", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["imported"] == ["SENDWELL_COMPANY_NAME"] and answer["skipped"] == ["SENDWELL_WEBSITE"]
    assert stored(runtime) == {"company_name": "Old Admin Edit Ltd.", "website": "https://bright-lighting.example"}
    assert "SENDWELL_COMPANY_NAME" in runtime.settings.config_file.read_text()  # the file is left as it is
    again = invoke(runtime, "import-env")
    assert again.exit_code == 0 and "nothing to import" in again.output


def test_import_env_refuses_a_bad_value_naming_it_and_imports_nothing(runtime) -> None:
    # A value the settings refuse stops every command at start; one only the admin's checks refuse reaches here.
    write_config_values(runtime.settings.config_file, {"company_name": "Fine Ltd.", "website": "ftp://old.example"})
    result = invoke(runtime, "import-env")
    assert result.exit_code == 1
    assert "SENDWELL_WEBSITE" in result.output and "http(s)" in result.output and "sendwell.env" in result.output and "nothing was imported" in result.output
    assert stored(runtime) == {}


def test_list_names_each_source(runtime) -> None:
    write_config_values(runtime.settings.config_file, {"website": "https://from-the-file.example"})
    with transaction(runtime.factory) as session:
        update_settings(runtime.settings, {"postal_address": "9 Quay Street, Ningbo"}, session)
    result = invoke(runtime, "list", "--json", SENDWELL_COMPANY_NAME="From the environment Ltd.")
    assert result.exit_code == 0, result.output
    rows = {row["variable"]: row for row in json.loads(result.output)}
    assert rows["SENDWELL_COMPANY_NAME"] == {"variable": "SENDWELL_COMPANY_NAME", "value": "From the environment Ltd.",
                                             "source": "environment"}
    assert rows["SENDWELL_POSTAL_ADDRESS"]["source"] == "database"
    assert rows["SENDWELL_POSTAL_ADDRESS"]["value"] == "9 Quay Street, Ningbo"  # applied at start (get_runtime)
    assert rows["SENDWELL_WEBSITE"] == {"variable": "SENDWELL_WEBSITE", "value": "https://from-the-file.example",
                                        "source": "sendwell.env"}
    assert rows["SENDWELL_SEND_WINDOW"]["source"] == "default"
