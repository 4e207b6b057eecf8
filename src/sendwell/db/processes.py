"""The registry of delivery processes: who may hold claims on sends, and which of them are dead.

Every process that claims sends (the queue consumer of `worker` and `serve`, `campaigns send
--wait`) registers a `delivery_processes` row at start, heartbeats it from a daemon thread and
deletes it at a clean exit; its claims carry its id (`sends.claimed_by`). A process is dead:

- **gone**: its row is missing (it exited, or a recovery pass already buried it);
- **exited**: it ran on this machine (same host name, boot id and PID namespace) and its pid
  is no longer running, is a zombie, or belongs to a newer process (another start time);
- **silent**: its last heartbeat is older than the timeout (another machine, or a process
  frozen or cut off from the database).

Anything else may be alive. The pid check is what makes a killed process's claims come back
at once; the heartbeat covers other machines, within `heartbeat_timeout`. Times compare on the
database's clock on PostgreSQL (machines' clocks may differ), on this machine's on SQLite.

Written here, not taken from a library: the liveness of a row in our own table, judged from
/proc, is a few lines no process-management library offers in this shape.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from sendwell.db.models import DeliveryProcess

log = logging.getLogger("sendwell.processes")

GONE, EXITED, SILENT = "gone", "exited", "silent"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a pid from /proc, None if there is none."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
    fields = text[text.rfind(")") + 2:].split()
    return fields[0], int(fields[19])


@dataclass(frozen=True)
class Identity:
    """What names this process to the others: host, pid, and what tells a live pid from a reused one."""

    host: str
    pid: int
    boot_id: str
    pid_namespace: str
    pid_started: int

    @classmethod
    def current(cls) -> Identity:
        pid = os.getpid()
        try:
            namespace = os.readlink("/proc/self/ns/pid")
        except OSError:
            namespace = ""
        stat = _stat(pid)
        return cls(host=socket.gethostname()[:255], pid=pid, boot_id=_read("/proc/sys/kernel/random/boot_id"),
                   pid_namespace=namespace[:64], pid_started=stat[1] if stat else 0)

    def can_see(self, row: Any) -> bool:
        """True when `row`'s pid is one of this machine's, in this PID namespace: /proc can judge it."""
        return bool(self.boot_id) and (row.host, row.boot_id, row.pid_namespace) == (
            self.host, self.boot_id, self.pid_namespace)


def running(pid: int, started: int = 0) -> bool:
    """Is `pid` (started at `started` ticks, when known) still running on this machine?"""
    stat = _stat(pid)
    if stat is None:
        if os.path.isdir("/proc/self"):
            return False
        try:  # no /proc: the signal-0 probe (cannot tell a reused pid)
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, start = stat
    return state not in ("Z", "X") and (not started or start == started)


def clock(conn: Connection) -> datetime:
    """Now, on the clock heartbeats are compared on: the database's on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(select(func.now())).scalar_one()
        return value.astimezone(timezone.utc)
    return datetime.now(timezone.utc)


def verdict(row: Any, *, now: datetime, timeout: timedelta, me: Identity | None = None) -> str | None:
    """Why the process of `row` is dead (GONE, EXITED, SILENT), or None if it may be alive."""
    if row is None:
        return GONE
    me = me or Identity.current()
    if me.can_see(row) and not running(row.pid, row.pid_started):
        return EXITED
    if row.last_seen < now - timeout:
        return SILENT
    return None


def owner_of(token: str | None) -> int | None:
    """The registered process whose claim `token` is: claims of a registered process write
    "<its id>.<random hex>" (sendwell.delivery.claims.new_claim_token); None for any other."""
    head, dot, _ = (token or "").partition(".")
    return int(head) if dot and head.isdigit() else None


def describe(row: Any) -> str:
    """`worker host:pid`, for messages."""
    return f"{row.role} {row.host}:{row.pid}"


def register(conn: Connection, *, role: str, me: Identity | None = None, process_id: int | None = None) -> int:
    """Insert this process's row (again, under `process_id`, after a recovery buried it); its id."""
    me = me or Identity.current()
    now = clock(conn)
    values = dict(host=me.host, pid=me.pid, boot_id=me.boot_id, pid_namespace=me.pid_namespace,
                  pid_started=me.pid_started, role=role, started_at=now, last_seen=now)
    if process_id is not None:
        values["id"] = process_id
    return int(conn.execute(insert(DeliveryProcess).values(**values).returning(DeliveryProcess.id)).scalar_one())


def beat(conn: Connection, process_id: int) -> bool:
    """Stamp the heartbeat; False when the row is gone (a recovery pass judged this process dead)."""
    now = clock(conn)
    done = conn.execute(update(DeliveryProcess).where(DeliveryProcess.id == process_id).values(last_seen=now))
    return done.rowcount == 1


def unregister(conn: Connection, process_id: int) -> None:
    conn.execute(delete(DeliveryProcess).where(DeliveryProcess.id == process_id))


class Heartbeat:
    """This process's registration and the daemon thread that keeps it fresh.

    `with Heartbeat.start(engine, role=…, interval=…) as hb:` registers, beats every `interval`
    seconds, and unregisters at the end. After each beat that reached the database the
    callbacks in `after_beat` run (e.g. handing back claims a database outage left behind).
    """

    def __init__(self, engine: Engine, *, role: str, interval: float) -> None:
        self.engine = engine
        self.role = role
        self.interval = interval
        self.identity = Identity.current()
        self.after_beat: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with engine.begin() as conn:
            self.id = register(conn, role=role, me=self.identity)

    @classmethod
    def start(cls, engine: Engine, *, role: str, interval: float) -> Heartbeat:
        hb = cls(engine, role=role, interval=interval)
        hb._thread = threading.Thread(target=hb._run, name=f"heartbeat-{hb.id}", daemon=True)
        hb._thread.start()
        return hb

    def beat(self) -> None:
        with self.engine.begin() as conn:
            if not beat(conn, self.id):
                # A recovery pass buried us while we could not beat (e.g. a database outage longer
                # than the timeout): our claims were taken back; register again under the same id.
                log.warning("process %s was judged dead meanwhile; registering again", self.id)
                register(conn, role=self.role, me=self.identity, process_id=self.id)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                for callback in list(self.after_beat):
                    callback()
            except Exception as exc:  # the database is unreachable: keep trying, say so once
                if not failing:
                    log.info("heartbeat of process %s failed (%s); retrying every %ss", self.id,
                                " ".join(str(exc).split())[:200], self.interval)
                failing = True
                continue
            if failing:
                log.info("heartbeat of process %s works again", self.id)
            failing = False

    def stop(self) -> None:
        """Stop beating and delete the row (a clean exit: anything still claimed is recovered at once)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5)
        try:
            with self.engine.begin() as conn:
                unregister(conn, self.id)
        except Exception as exc:  # the row stays; its dead pid or silence gives it away later
            log.info("could not unregister process %s: %s", self.id, " ".join(str(exc).split())[:200])

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
