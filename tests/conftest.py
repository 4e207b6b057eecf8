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
from xdist.scheduler import LoadGroupScheduling

from sendwell.config import Settings, load_settings
from sendwell.db.migrate import upgrade
from sendwell.db.models import Base
from sendwell.db.session import make_engine
from sendwell.demo.smtp_server import CaptureSMTPServer, free_port
from sendwell.runtime import Runtime

# One delivery process per `campaigns send --wait` / `serve` unless a test asks for more: the
# default (one per core) would spawn a child per call, each importing the whole app, in hundreds
# of tests. tests/worker/test_processes.py and tests/cli/test_delivery_processes.py cover the default.
os.environ.setdefault("SENDWELL_DELIVERY_PROCESSES", "1")

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
        # A test database need not survive a power cut: commits return without waiting for
        # the WAL flush, which is most of a small transaction's time on a slow disk.
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class _PgReset:
    """Empties every table and restarts every sequence between tests, on one long-lived connection.

    DELETE of a few rows per table is far cheaper than TRUNCATE (which replaces each table's
    files) and than opening a new engine per test; sequences restart so ids begin at 1 again.
    """

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]  # children before parents
        self.statement = "".join(f'DELETE FROM "{name}";' for name in tables) + (
            "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'S' AND n.nspname = current_schema();")

    def __call__(self) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(self.statement)


@pytest.fixture(scope="session")
def pg_reset(pg_database: str) -> Iterator[_PgReset]:
    reset = _PgReset(pg_database)
    yield reset
    reset.engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated, empty database: SQLite file or PostgreSQL."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "sendwell.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    request.getfixturevalue("pg_reset")()
    return url


@pytest.hookimpl(tryfirst=True)  # before pytest turns db_url's own params into variants
def sqlite_only(metafunc: pytest.Metafunc) -> None:
    """`pytest_generate_tests` for adapter suites: their database tests run on SQLite only.

    An adapter only translates HTTP or a command line into service calls, and every service
    test runs on both databases; the few adapter tests that reach dialect-specific paths carry
    `@pytest.mark.both_backends` and keep both.
    """
    if "db_url" not in metafunc.fixturenames or metafunc.definition.get_closest_marker("both_backends"):
        return
    if any("db_url" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test chose its backend itself
    # A mark rather than metafunc.parametrize: pytest then leaves the fixture's params alone.
    metafunc.definition.add_marker(pytest.mark.parametrize(
        "db_url", [b for b in BACKENDS if b == "sqlite"] or BACKENDS, indirect=True))


# The modules whose tests run several worker or server processes at once and judge how they
# share the work, recover or keep a pace: each wants the machine to itself. Under
# `--dist loadgroup` they form one group that one xdist worker runs one after the other (the group
# is the largest unit, so it starts first) while the other worker runs everything else. Other
# tests marked `slow` start one process or server (NSD, Dovecot, `sendwell serve`) and wait for
# it to answer: they judge no timing, so they go to whichever worker is free. The group is chosen
# by module here because pytest-xdist's own `xdist_group` mark does not group on pytest 9.2 (it
# rewrites the old string node id, pytest-xdist issue 1386).
SERIAL_MODULES = frozenset({
    "tests/deploy/test_processes.py",
    "tests/delivery/test_limits_workers.py",
    "tests/reliability/test_crash.py",
    "tests/reliability/test_infrastructure.py",
    "tests/reliability/test_send_wait.py",
    "tests/reliability/test_smtp_faults.py",
    "tests/reliability/test_unsubscribe_load.py",
    "tests/sequences/test_crash.py",
    "tests/worker/test_serve.py",
    "tests/worker/test_processes.py",
    "tests/worker/test_workers.py",
})


class _SerialTogether(LoadGroupScheduling):
    """`--dist loadgroup` with every test of SERIAL_MODULES in the one group "serial"."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.split("::", 1)[0] in SERIAL_MODULES:
            return "serial"
        return super()._split_scope(nodeid)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown when xdist is off (-p no:xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadGroupScheduling | None:
    return _SerialTogether(config, log) if config.getvalue("dist") == "loadgroup" else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::", 1)[0] in SERIAL_MODULES and not item.get_closest_marker("slow"):
            raise pytest.UsageError(f"{item.nodeid} runs in the serial group: mark it `slow` (it starts processes)")


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
