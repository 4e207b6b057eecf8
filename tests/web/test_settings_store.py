"""Settings saved in the admin live in the database: every process on every machine sees them, at
start and on its periodic scan; the environment still wins; a bad value stores nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sendwell.config import load_settings, write_config_values
from sendwell.db.models import StoredSetting
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.settings_edit import SettingsError, stored_values, update_settings
from sendwell.worker.queue import Queue
from tests.conftest import TEST_PEPPER, TEST_SECRET

# Service tests: on both databases (tests/web is otherwise SQLite only).
pytestmark = pytest.mark.both_backends

EDITED = ("SENDWELL_COMPANY_NAME", "SENDWELL_POSTAL_ADDRESS", "SENDWELL_WEBSITE", "SENDWELL_STAGE_CAPS")


@pytest.fixture(autouse=True)
def _no_sendwell_env(monkeypatch) -> None:
    for name in EDITED:
        monkeypatch.delenv(name, raising=False)


def save(runtime: Runtime, **changes: str) -> dict[str, str]:
    """What the admin's Settings page does on save."""
    with transaction(runtime.factory) as session:
        new, changed = update_settings(runtime.settings, changes, session, updated_by="admin@bright-lighting.example")
    runtime.replace_settings(new)
    return changed


@pytest.fixture
def machine_b(tmp_path: Path, settings):  # type: ignore[no-untyped-def]
    """A second machine: its own data folder (and sendwell.env), the same database; built on demand."""
    runtimes: list[Runtime] = []

    def build() -> Runtime:
        rt = Runtime(load_settings(data_dir=tmp_path / "machine-b", database_url=settings.effective_database_url,
                                   secret_key=TEST_SECRET, hash_pepper=TEST_PEPPER))
        runtimes.append(rt)
        return rt

    yield build
    for rt in runtimes:
        rt.dispose()


def test_an_edit_is_seen_by_another_machine_at_start_and_on_its_scan(runtime, machine_b) -> None:
    assert save(runtime, company_name="Ningbo Bright Lighting Group") == {"company_name": "Ningbo Bright Lighting Group"}
    b = machine_b()
    assert b.settings.company_name != "Ningbo Bright Lighting Group"  # sendwell.env and defaults only
    assert b.load_stored_settings() == ["company_name"]  # at start (cli get_runtime)
    assert b.settings.company_name == "Ningbo Bright Lighting Group"
    # Later edits reach the running process on its worker's periodic scan.
    queue = Queue(b)
    assert queue.reload_settings() == []  # nothing new
    save(runtime, postal_address="9 Quay Street, Ningbo 315000", stage_caps="prospect=1/14d")
    before = b.settings
    assert sorted(queue.reload_settings()) == ["postal_address", "stage_caps"]
    assert b.settings.postal_address == "9 Quay Street, Ningbo 315000"
    assert b.settings.stage_cap_rules["prospect"].window == 14 * 86400  # parsed from the new text
    assert before.postal_address != b.settings.postal_address  # swapped in, never changed in place
    assert queue.reload_settings() == []


def test_the_database_wins_over_the_other_machines_sendwell_env(runtime, machine_b, tmp_path) -> None:
    write_config_values(tmp_path / "machine-b" / "sendwell.env", {"website": "https://old-from-the-file.example"})
    save(runtime, website="https://bright-lighting.example")
    b = machine_b()
    assert b.settings.website == "https://old-from-the-file.example"
    b.load_stored_settings()
    assert b.settings.website == "https://bright-lighting.example"
    assert b.refresh_settings() == []  # the file's older value does not come back on the scan


def test_an_environment_variable_still_wins(runtime, machine_b, monkeypatch) -> None:
    save(runtime, company_name="Saved in the admin Ltd.")
    monkeypatch.setenv("SENDWELL_COMPANY_NAME", "From the environment Ltd.")
    b = machine_b()
    assert b.load_stored_settings() == []
    assert b.refresh_settings() == []
    assert b.settings.company_name == "From the environment Ltd."
    with pytest.raises(SettingsError, match="set in the environment"):
        save(b, company_name="Other")


def test_a_value_with_a_unicode_line_separator_is_refused_and_nothing_is_stored(runtime, machine_b) -> None:
    with pytest.raises(SettingsError, match="SENDWELL_COMPANY_NAME.*U\\+2028") as refused:
        save(runtime, website="https://bright-lighting.example",
             company_name="Acme\u2028SENDWELL_WEBHOOK_URLS=https://evil.example")
    assert refused.value.field == "company_name"
    with runtime.factory() as session:
        assert stored_values(session) == {}
    b = machine_b()
    assert b.load_stored_settings() == [] and b.settings.webhook_urls == ""


def test_a_bad_row_written_by_hand_is_skipped_and_a_deleted_row_falls_back(runtime, machine_b, tmp_path) -> None:
    save(runtime, company_name="Ningbo Bright Lighting Group", postal_address="9 Quay Street, Ningbo")
    write_config_values(tmp_path / "machine-b" / "sendwell.env", {"postal_address": "From the file, Ningbo"})
    b = machine_b()
    b.load_stored_settings()
    with transaction(runtime.factory) as session:
        session.get(StoredSetting, "SENDWELL_COMPANY_NAME").value = "Acme\nSENDWELL_SECRET_KEY=x"
        session.delete(session.get(StoredSetting, "SENDWELL_POSTAL_ADDRESS"))
    assert b.refresh_settings() == ["postal_address"]
    assert b.settings.company_name == "Ningbo Bright Lighting Group"  # what runs stays
    assert b.settings.postal_address == "From the file, Ningbo"  # back to this machine's sendwell.env


def test_a_process_on_a_database_without_the_table_starts_as_before(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    rt = Runtime(load_settings(data_dir=tmp_path / "empty", secret_key=TEST_SECRET, hash_pepper=TEST_PEPPER))
    try:
        assert rt.load_stored_settings() == [] and rt.stored_fields == frozenset()
    finally:
        rt.dispose()


def _wait_for(log: Path, text: str, proc: subprocess.Popen, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while text not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return log.read_text()


@pytest.mark.slow
def test_a_running_worker_on_another_machine_applies_an_edit_within_its_scan(runtime, tmp_path) -> None:
    save(runtime, company_name="Ningbo Bright Lighting Group")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")} | {
        "SENDWELL_DATA_DIR": str(tmp_path / "machine-b"), "SENDWELL_DATABASE_URL": runtime.settings.effective_database_url,
        "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER, "SENDWELL_RECOVERY_INTERVAL": "0.5"}
    log = tmp_path / "worker.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("sendwell")), "worker", "--threads", "1"],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        started = _wait_for(log, "settings saved in the admin (database): SENDWELL_COMPANY_NAME", proc)
        assert proc.poll() is None and "SENDWELL_COMPANY_NAME" in started, started
        assert "key fingerprints" in started
        save(runtime, postal_address="9 Quay Street, Ningbo 315000")
        scanned = _wait_for(log, "setting postal_address changed", proc, seconds=30)
        assert "setting postal_address changed" in scanned, scanned
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
