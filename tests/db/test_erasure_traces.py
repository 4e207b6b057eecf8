"""An erased person leaves no readable trace in the SQLite file: freed space is overwritten."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from sendwell.cli.main import cli, register_commands
from sendwell.db.session import make_engine, overwriting_deletes

register_commands()
TRACES = ("Zephyrine", "Quarterhouse", "Quillmoor Lanterns", "zephyrine@quillmoor.example")


def _library_default_off(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_conn.execute("PRAGMA secure_delete=OFF")


@pytest.fixture
def sqlite_without_secure_delete():
    """Connections start as on SQLite builds whose default leaves freed space as it was.

    Debian's build turns secure_delete on by default, Homebrew's, python.org's and many
    others' do not; a class-level pool listener runs before each engine's own, so Sendwell's
    hook must turn it on itself.
    """
    event.listen(Pool, "connect", _library_default_off)
    yield
    event.remove(Pool, "connect", _library_default_off)


def run(env: dict[str, str | None], *args: str) -> dict:
    result = CliRunner().invoke(cli, [*args, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_erasure_leaves_nothing_readable_in_the_database_file(db_url: str, tmp_path: Path,
                                                              sqlite_without_secure_delete: None) -> None:
    env: dict[str, str | None] = {
        "SENDWELL_DATA_DIR": str(tmp_path / "data"), "SENDWELL_DATABASE_URL": db_url, "SENDWELL_SECRET_KEY": None,
        "SENDWELL_HASH_PEPPER": None, "SENDWELL_SMTP_URL": None, "SENDWELL_QUEUE_URL": None}
    run(env, "init")
    source = tmp_path / "people.csv"
    # Neighbours on the same pages: the erased row's bytes sit among rows that stay.
    rows = [f"buyer{i}@kept.example,Kept{i},Keeper,Kept Trading {i}" for i in range(40)]
    rows.insert(20, "zephyrine@quillmoor.example,Zephyrine,Quarterhouse,Quillmoor Lanterns")
    source.write_text("email,first_name,last_name,company\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert run(env, "contacts", "import", str(source), "--consent", "express")["created"] == 41
    assert run(env, "contacts", "erase", "zephyrine@quillmoor.example")["found"]

    database = Path(db_url.removeprefix("sqlite:///"))
    # Whatever a later reader (or a copy of the files) would see: the main file after the
    # write-ahead log is folded back in, and the log itself if anything is left of it.
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    raw = database.read_bytes()
    wal = database.with_name(database.name + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert b"Kept Trading 7" in raw  # the check can see text that is there
    for trace in TRACES:
        assert trace.encode() not in raw, trace


def test_sqlite_zeroes_deleted_content_and_overwrites_everything_during_an_erasure(
        tmp_path: Path, sqlite_without_secure_delete: None) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with Session(engine) as session:
        # FAST (2): deleted content is zeroed in its page on every connection, whatever the build's default.
        assert session.connection().execute(text("PRAGMA secure_delete")).scalar() == 2
        with overwriting_deletes(session):
            assert session.connection().execute(text("PRAGMA secure_delete")).scalar() == 1  # ON: freed pages too
        assert session.connection().execute(text("PRAGMA secure_delete")).scalar() == 2
    engine.dispose()
