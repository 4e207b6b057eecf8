"""The PostgreSQL pool size comes from the settings (SENDWELL_DB_POOL_SIZE / SENDWELL_DB_MAX_OVERFLOW)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendwell.db.session import engine_for, make_engine
from sendwell.runtime import Runtime
from tests.conftest import make_settings

# Never connected to: building an engine opens no connection.
PG_URL = "postgresql://sendwell@127.0.0.1:1/sendwell"


def test_defaults_are_ten_and_ten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENDWELL_DB_POOL_SIZE", raising=False)
    monkeypatch.delenv("SENDWELL_DB_MAX_OVERFLOW", raising=False)
    for engine in (make_engine(PG_URL), engine_for(make_settings(tmp_path, database_url=PG_URL))):
        assert (engine.pool.size(), engine.pool._max_overflow) == (10, 10)
        engine.dispose()


def test_the_settings_size_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDWELL_DB_POOL_SIZE", "3")
    monkeypatch.setenv("SENDWELL_DB_MAX_OVERFLOW", "2")
    settings = make_settings(tmp_path, database_url=PG_URL)
    assert (settings.db_pool_size, settings.db_max_overflow) == (3, 2)
    # engine_for from the settings object, and a bare make_engine (as every process's runtime
    # builds it) from the same variables.
    for engine in (engine_for(settings), make_engine(PG_URL)):
        assert (engine.pool.size(), engine.pool._max_overflow) == (3, 2)
        engine.dispose()


def test_a_bad_pool_size_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDWELL_DB_POOL_SIZE", "many")
    with pytest.raises(ValueError, match="SENDWELL_DB_POOL_SIZE"):
        make_engine(PG_URL)


def test_the_runtime_engine_takes_the_pool_size_from_its_settings(tmp_path) -> None:
    runtime = Runtime(make_settings(tmp_path / "data", database_url=PG_URL,
                                    db_pool_size=3, db_max_overflow=2))
    try:
        pool = runtime.engine.pool
        assert pool.size() == 3 and pool._max_overflow == 2  # no connection is opened to read these
    finally:
        runtime.dispose()
