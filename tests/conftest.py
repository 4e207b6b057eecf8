"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, with real servers."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from sendwell.config import Settings, load_settings
from sendwell.db.migrate import upgrade
from sendwell.db.models import Base
from sendwell.db.session import make_engine
from sendwell.demo.smtp_server import CaptureSMTPServer, free_port
from sendwell.runtime import Runtime

PG_ADMIN_URL = os.environ.get("SENDWELL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SENDWELL_SHARED_DIR", REPO.parent / "shared"))
BACKENDS = [b for b in os.environ.get("SENDWELL_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]

TEST_SECRET = "test-secret-key-0123456789"
TEST_PEPPER = "test-pepper-0123456789"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _pg_dbname() -> str:
    # Unique per checkout, per test run and per xdist worker: two runs at once (two checkouts,
    # or a quick run beside a long one) never drop each other's database.
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8] or str(os.getpid())
    tag = hashlib.sha1(f"{REPO}:{run}".encode()).hexdigest()[:10]
    return f"sendwell_test_{tag}_{_worker()}"


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating per test would be slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A migrated PostgreSQL database for this worker; fails in CI if the server is down."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}; .ci/run should have started it")
        pytest.skip("PostgreSQL is not reachable")
    name = _pg_dbname()
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated, empty database: SQLite file or PostgreSQL."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "sendwell.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    _truncate_pg(url)
    return url


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        hash_pepper=TEST_PEPPER,
        smtp_url="capture",
        base_url="https://mail.bright-lighting.example",
        from_="Ningbo Bright Lighting <sales@bright-lighting.example>",
        company_name="Ningbo Bright Lighting Co., Ltd.",
        postal_address="88 Jiangnan Road, Ningbo 315040, China",
        contact_email="sales@bright-lighting.example",
        dkim_domain="",
        dkim_key_file="",
    )
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url=db_url)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    yield rt
    rt.dispose()


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Any]:
    """A session on the test database; the test commits what it wants others to see."""
    s = runtime.factory()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[CaptureSMTPServer]:
    """A real aiosmtpd server on loopback that keeps what it receives."""
    with CaptureSMTPServer(tmp_path / "received") as server:
        yield server


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED
