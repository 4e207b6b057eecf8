"""`sendwell migrate`: to the newest schema, idempotent, and refusing a database from a newer release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from sendwell.cli.main import cli, register_commands
from sendwell.config import load_settings
from sendwell.db.migrate import current_revision, head_revision
from sendwell.db.session import make_engine
from sendwell.keys import local_fingerprints, recorded_fingerprints

register_commands()


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def empty_env(tmp_path: Path) -> dict[str, str]:
    return {"SENDWELL_DATA_DIR": str(tmp_path / "data"),
            "SENDWELL_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}


def test_migrate_upgrades_an_empty_database_then_says_already_at_head(empty_env) -> None:
    first = run(empty_env, "migrate", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) | {"database": ""} == {
        "database": "", "from": None, "to": head_revision(), "changed": True, "keys_recorded": False}
    second = run(empty_env, "migrate")
    assert second.exit_code == 0, second.output
    assert second.output.startswith(f"already at {head_revision()}")
    engine = make_engine(empty_env["SENDWELL_DATABASE_URL"])
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


@pytest.mark.both_backends
def test_migrate_refuses_a_database_from_a_newer_release(tmp_path: Path, db_url: str) -> None:
    env = {"SENDWELL_DATA_DIR": str(tmp_path / "data"), "SENDWELL_DATABASE_URL": db_url}
    assert run(env, "migrate").output.startswith(f"already at {head_revision()}")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
        result = run(env, "migrate")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "9999_from_the_future"
    finally:
        # The PostgreSQL test database is shared by the session's tests: put its revision back.
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})
        engine.dispose()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "9999_from_the_future" in lines[0] and head_revision() in lines[0] and "downgrade" in lines[0]


def test_migrate_with_keys_configured_records_their_fingerprints_once(empty_env) -> None:
    env = empty_env | {"SENDWELL_SECRET_KEY": "first-machine-key-0123456789", "SENDWELL_HASH_PEPPER": "pepper-0123456789"}
    first = run(env, "migrate", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["keys_recorded"] is True
    engine = make_engine(env["SENDWELL_DATABASE_URL"])
    try:
        recorded = recorded_fingerprints(engine)
        settings = load_settings(data_dir=Path(env["SENDWELL_DATA_DIR"]), secret_key=env["SENDWELL_SECRET_KEY"],
                                 hash_pepper=env["SENDWELL_HASH_PEPPER"])
        assert recorded["secret_key"] == local_fingerprints(settings)["secret_key"]
    finally:
        engine.dispose()
    other = env | {"SENDWELL_SECRET_KEY": "another-machine-key-0123456789"}
    again = run(other, "migrate", "--json")
    assert again.exit_code == 0 and json.loads(again.output)["keys_recorded"] is False  # the first record stays
