"""Private PostgreSQL and Redis servers that a test may restart without disturbing the others.

The machine's shared servers serve every other test in parallel; a fault test gets its own,
on a free port in its own directory, started and stopped with the servers' own tools.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sendwell.demo.smtp_server import free_port


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must be able to run the infrastructure fault tests")
    pytest.skip(why)


class PrivatePostgres:
    """`initdb` + `pg_ctl` of the installed PostgreSQL, run as the `postgres` system user."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            _unavailable("no PostgreSQL server binaries under /usr/lib/postgresql")
        if os.geteuid() != 0:
            _unavailable("a private PostgreSQL is started as the postgres user, which needs root")
        self.bin = Path(bins[-1]).parent
        # Not under pytest's tmp_path: the postgres user cannot enter root's private folders.
        self.base = Path(tempfile.mkdtemp(prefix="sendwell-pg-"))
        shutil.chown(self.base, "postgres", "postgres")
        self.dir = self.base / "pgdata"
        self.port = free_port()
        self.log = self.base / "postgres.log"
        self._as_postgres(self.bin / "initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *cmd: object) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *map(str, cmd)], check=True, capture_output=True)

    def start(self) -> None:
        self._as_postgres(self.bin / "pg_ctl", "-D", self.dir, "-l", self.log, "-w", "-o",
                          f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")

    def restart(self) -> None:
        """Fast shutdown (every open connection is cut) and start again."""
        self._as_postgres(self.bin / "pg_ctl", "-D", self.dir, "-m", "fast", "-w", "stop")
        self.start()

    def stop(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.dir),
                        "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateRedis:
    """`redis-server` without persistence: a restart loses every queued job, as a crash would."""

    def __init__(self, base: Path) -> None:
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            _unavailable("redis-server is not installed")
        self.port = free_port()
        self.dir = base
        base.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)

    def restart(self) -> None:
        self.stop()
        self.start()
