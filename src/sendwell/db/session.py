"""Engines, sessions and the one transaction boundary every adapter uses."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings


def make_engine(url: str, *, pool_size: int | None = None, max_overflow: int | None = None) -> Engine:
    """An engine tuned for the backend: WAL, busy timeout and secure delete on SQLite.

    PostgreSQL's pool holds `pool_size` connections plus up to `max_overflow` more under load;
    left out, each comes from SENDWELL_DB_POOL_SIZE / SENDWELL_DB_MAX_OVERFLOW (10 and 10), so
    every process started with those variables honours them (engine_for passes the settings').
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets the web process read while a worker writes; foreign keys are off
            # by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Deleted content is zeroed where that costs no extra I/O (in its own page); a full
            # overwrite of freed pages doubles the one-click's p99 (27 → 60 ms, bench/unsubscribe.py),
            # so it is switched on only around an erasure (overwriting_deletes). The library
            # default differs between SQLite builds, so say it here.
            cur.execute("PRAGMA secure_delete=FAST")
            cur.close()

        # SQLite has one writer. Threads of this process queue on a lock instead of in
        # SQLite's busy handler, whose sleeps (up to 100 ms each) collapse throughput under
        # concurrent writers (28 vs > 1,000 one-click POSTs/s, bench/unsubscribe.py).
        # Processes queue on an flock of a file beside the database: the busy handler polls,
        # and a writer that holds the lock for most of the time (a deliverer's hand-offs)
        # leaves it free only for microseconds between transactions, so a writer in another
        # process (a CLI `pause`) could starve past the busy timeout; the kernel wakes an
        # flock waiter at the release instead. Both are released at commit / rollback /
        # check-in, from whichever thread; a thread-lock timeout falls back to the busy handler.
        writer = threading.Lock()
        gate = _ProcessGate(engine.url.database)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # BEGIN IMMEDIATE takes the write lock up front, so two writers never deadlock
            # on a read-then-write upgrade; pysqlite's own BEGIN handling is turned off.
            if writer.acquire(timeout=30):
                conn.info["sendwell_writer"] = True
                gate.acquire()
            # Straight on the DB-API connection: through exec_driver_sql this statement cost
            # more than a deliverer's whole per-mail transaction otherwise (~50 µs per mail).
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE")

        def _release(info):  # type: ignore[no-untyped-def]
            if info.pop("sendwell_writer", False):
                gate.release()
                writer.release()

        event.listen(engine, "commit", lambda conn: _release(conn.info))
        event.listen(engine, "rollback", lambda conn: _release(conn.info))
        event.listen(engine.pool, "checkin", lambda _dbapi, record: _release(record.info))

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None

        return engine
    return create_engine(url, pool_pre_ping=True,
                         pool_size=_env_int("SENDWELL_DB_POOL_SIZE", 10) if pool_size is None else pool_size,
                         max_overflow=_env_int("SENDWELL_DB_MAX_OVERFLOW", 10) if max_overflow is None else max_overflow)


def engine_for(settings: Settings) -> Engine:
    """The engine for a process's settings (database URL and pool size)."""
    return make_engine(settings.effective_database_url, pool_size=settings.db_pool_size,
                       max_overflow=settings.db_max_overflow)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None


class _ProcessGate:
    """An exclusive flock on `<database>-writer.lock`, held by one thread of this process at a time.

    Written by hand: flock is the one primitive whose waiters the kernel wakes at the release
    (SQLite's own locks are polled). The caller's thread lock serialises this process's
    threads, so the one open file description is never locked twice. An in-memory database
    has no file and no other process: nothing to do.
    """

    def __init__(self, database: str | None) -> None:
        self.path = None if not database or database == ":memory:" or database.startswith("file:") else database + "-writer.lock"
        self.fd: int | None = None
        self.pid = 0

    def acquire(self) -> None:
        if self.path is None:
            return
        if self.fd is None or self.pid != os.getpid():
            # A forked child shares its parent's open file description, and with it the
            # parent's flock: it needs one of its own.
            try:
                self.fd, self.pid = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600), os.getpid()
            except OSError:  # a read-only folder: SQLite's busy handler alone, as before
                self.path = None
                return
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session, commit once at the end, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def overwriting_deletes(session: Session) -> Iterator[None]:
    """On SQLite, overwrite every freed byte with zeros while the block runs (an erasure, GDPR Art 17:
    nothing of the person readable in the file's free pages); PostgreSQL needs VACUUM (docs/audience.md)."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA secure_delete=ON")
    try:
        yield
        session.flush()  # the deletes happen inside the block, while the pages are overwritten
    finally:
        conn.exec_driver_sql("PRAGMA secure_delete=FAST")
