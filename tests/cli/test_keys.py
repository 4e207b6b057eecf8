"""One set of keys: `init` records the keys' fingerprints, refuses a second machine without them, `--join` shares them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.cli.main import cli, register_commands
from sendwell.config import load_settings, write_config_values
from sendwell.db.models import InstallationKey
from sendwell.db.session import make_engine
from sendwell.keys import KeyMismatch, local_fingerprints, recorded_fingerprints
from sendwell.optout.tokens import TokenData, make_token, read_token
from sendwell.runtime import Runtime

register_commands()

SENDWELL = str(Path(sys.executable).with_name("sendwell"))


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def shared_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


def machine(tmp_path: Path, name: str, database_url: str) -> dict[str, str]:
    return {"SENDWELL_DATA_DIR": str(tmp_path / name), "SENDWELL_DATABASE_URL": database_url}


def settings_of(env: dict[str, str]):
    return load_settings(data_dir=Path(env["SENDWELL_DATA_DIR"]), database_url=env["SENDWELL_DATABASE_URL"])


def test_first_init_records_the_fingerprints_never_the_keys(tmp_path, shared_db) -> None:
    a = machine(tmp_path, "a", shared_db)
    result = run(a, "init")
    assert result.exit_code == 0, result.output
    engine = make_engine(shared_db)
    try:
        recorded = recorded_fingerprints(engine)
        with Session(engine) as session:
            stored = " ".join(row.fingerprint for row in session.scalars(select(InstallationKey)))
    finally:
        engine.dispose()
    settings = settings_of(a)
    assert recorded == local_fingerprints(settings)
    assert set(recorded) == {"secret_key", "hash_pepper", "dkim"}
    assert all(len(value) == 16 for value in recorded.values())
    assert settings.secret_key not in stored and settings.hash_pepper not in stored


def test_second_machine_without_keys_is_refused_and_creates_nothing(tmp_path, shared_db) -> None:
    assert run(machine(tmp_path, "a", shared_db), "init").exit_code == 0
    b = machine(tmp_path, "b", shared_db)
    result = run(b, "init")
    assert result.exit_code == 1
    assert "this database belongs to an installation with other keys" in result.output
    assert "sendwell init --join FILE" in result.output
    assert not (tmp_path / "b").exists()


def test_join_takes_the_first_machines_keys_and_tokens_verify_across(tmp_path, shared_db) -> None:
    a = machine(tmp_path, "a", shared_db)
    assert run(a, "init").exit_code == 0
    b = machine(tmp_path, "b", shared_db)
    result = run(b, "init", "--join", str(tmp_path / "a" / "sendwell.env"))
    assert result.exit_code == 0, result.output
    assert "Publish this DKIM record" not in result.output
    settings_a, settings_b = settings_of(a), settings_of(b)
    assert local_fingerprints(settings_a) == local_fingerprints(settings_b)
    assert not (tmp_path / "b" / "dkim").exists()  # no new DKIM key: the first machine's is used
    data = TokenData(7, 3, None)
    token = make_token(settings_a.secret_keys, "unsubscribe", data)
    assert read_token(settings_b.secret_keys, "unsubscribe", token) == data
    token_b = make_token(settings_b.secret_keys, "unsubscribe", data)
    assert read_token(settings_a.secret_keys, "unsubscribe", token_b) == data


def test_join_with_another_installations_keys_is_refused(tmp_path, shared_db) -> None:
    assert run(machine(tmp_path, "a", shared_db), "init").exit_code == 0
    other = machine(tmp_path, "other", f"sqlite:///{tmp_path / 'other.db'}")
    assert run(other, "init").exit_code == 0
    b = machine(tmp_path, "b", shared_db)
    result = run(b, "init", "--join", str(tmp_path / "other" / "sendwell.env"))
    assert result.exit_code == 1
    assert "secret key" in result.output and "differ" in result.output
    assert not (tmp_path / "b" / "sendwell.env").exists()


def test_a_runtime_with_another_secret_key_refuses_to_build_a_deliverer(tmp_path, shared_db) -> None:
    a = machine(tmp_path, "a", shared_db)
    assert run(a, "init").exit_code == 0
    config = tmp_path / "a" / "sendwell.env"
    write_config_values(config, {"secret_key": "a-foreign-secret-key-of-another-machine"})
    runtime = Runtime(settings_of(a))
    try:
        with pytest.raises(KeyMismatch, match="secret key"):
            runtime.make_deliverer()
    finally:
        runtime.dispose()


def test_a_runtime_with_the_installations_keys_builds_a_deliverer(tmp_path, shared_db) -> None:
    a = machine(tmp_path, "a", shared_db)
    assert run(a, "init").exit_code == 0
    runtime = Runtime(settings_of(a))
    try:
        assert runtime.make_deliverer() is not None
    finally:
        runtime.dispose()


def process_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")}
    return clean | env | extra


@pytest.mark.slow
def test_a_worker_with_another_secret_key_refuses_to_start(tmp_path, shared_db) -> None:
    a = machine(tmp_path, "a", shared_db)
    assert run(a, "init").exit_code == 0
    env = process_env(a, SENDWELL_SECRET_KEY="a-foreign-secret-key-of-another-machine")
    try:
        done = subprocess.run([SENDWELL, "worker"], env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker with a foreign secret key started")
    assert done.returncode == 1
    assert "secret key" in done.stderr and "pepper" not in done.stderr.split("differ")[0]


@pytest.mark.slow
def test_a_worker_with_the_installations_keys_prints_their_fingerprints(tmp_path, shared_db) -> None:
    a = machine(tmp_path, "a", shared_db)
    assert run(a, "init").exit_code == 0
    log = tmp_path / "worker.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([SENDWELL, "worker"], env=process_env(a), stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "key fingerprints" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    line = next(line for line in log.read_text().splitlines() if "key fingerprints" in line)
    expected = local_fingerprints(settings_of(a))
    assert all(value in line for value in expected.values())
    assert settings_of(a).secret_key not in line


def test_a_new_dkim_key_is_refused_until_recorded_with_record_keys(tmp_path, shared_db) -> None:
    a = machine(tmp_path, "a", shared_db)
    assert run(a, "init").exit_code == 0
    keygen = run(a, "dkim", "keygen", "--domain", settings_of(a).dkim_domain, "--selector", "s2")
    assert keygen.exit_code == 0, keygen.output
    runtime = Runtime(settings_of(a))
    try:
        with pytest.raises(KeyMismatch, match="DKIM"):
            runtime.make_deliverer()
    finally:
        runtime.dispose()
    recorded = run(a, "init", "--record-keys")
    assert recorded.exit_code == 0, recorded.output
    runtime = Runtime(settings_of(a))
    try:
        assert runtime.make_deliverer() is not None
    finally:
        runtime.dispose()


@pytest.mark.both_backends
def test_second_machine_is_refused_and_join_accepted_on_each_database(tmp_path, db_url) -> None:
    a = machine(tmp_path, "a", db_url)
    assert run(a, "init").exit_code == 0
    b = machine(tmp_path, "b", db_url)
    refused = run(b, "init")
    assert refused.exit_code == 1 and "other keys" in refused.output
    joined = run(b, "init", "--join", str(tmp_path / "a" / "sendwell.env"))
    assert joined.exit_code == 0, joined.output
    assert local_fingerprints(settings_of(b)) == local_fingerprints(settings_of(a))
