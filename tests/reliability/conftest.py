"""The reliability suite: real worker processes, real servers, campaigns of thousands of mails.

`SENDWELL_RELIABILITY_RECIPIENTS` sizes the campaigns. The default (5,000) proves every property
(a stop after a third of the campaign, duplicates bounded by the open SMTP sessions, nobody
missing) in seconds; `make test-full` runs the 100,000-mail campaigns the figures in
docs/reliability.md come from. `SENDWELL_RELIABILITY_REPORT=FILE` makes each test append its
figures to FILE as JSON lines.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sendwell.demo.smtp_server import free_port
from sendwell.runtime import Runtime
from sendwell.worker.queue import Queue
from tests.conftest import make_settings
from tests.content.conftest import content_settings  # noqa: F401  (fixtures reused from other suites)
from tests.web.api.conftest import admin, auth, client, dkim_key_file  # noqa: F401
from tests.worker import support

RECIPIENTS = int(os.environ.get("SENDWELL_RELIABILITY_RECIPIENTS", "5000"))
THREADS = 4  # SMTP sessions per worker


def record_figures(test: str, **figures: Any) -> None:
    """Append this run's figures to the report file, when one was asked for."""
    target = os.environ.get("SENDWELL_RELIABILITY_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": test, "at": time.strftime("%Y-%m-%d %H:%M:%S"), **figures}) + "\n")


def progress(runtime: Any, campaign_id: int, server: Any) -> Any:
    """What a timed-out wait prints: the campaign's sends by state and what the server received."""
    return lambda: f"sends {support.states(runtime, campaign_id)}, received {server.received}"


@dataclass
class ArrivalHandler:
    """Keeps only who received a mail and when (monotonic): 100,000 bodies would be 500 MB."""

    arrivals: list[tuple[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # Campaign mail only (its VERP envelope sender): workers also send the opt-outs'
        # thank-you mails from the outbox, which rightly reach a person after their POST.
        if envelope.mail_from.startswith("bounce+"):
            with self.lock:
                self.arrivals.append((envelope.rcpt_tos[0].lower(), time.monotonic()))
        return "250 2.0.0 queued"


class ArrivalServer:
    """An aiosmtpd server on loopback counting arrivals per recipient."""

    def __init__(self) -> None:
        self.handler = ArrivalHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, decode_data=False)
        self.url = f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> int:
        return len(self.handler.arrivals)

    def receipts(self) -> Counter[str]:
        with self.handler.lock:
            return Counter(rcpt for rcpt, _ in self.handler.arrivals)

    def last_arrival(self) -> dict[str, float]:
        with self.handler.lock:
            return {rcpt: at for rcpt, at in self.handler.arrivals}

    def __enter__(self) -> ArrivalServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def shape_settings(db_url: str, data_dir: Path, smtp_url: str, **overrides: Any) -> Any:
    redis = db_url.startswith("postgresql")
    values: dict[str, Any] = dict(
        database_url=db_url, smtp_url=smtp_url,
        queue_url="redis://127.0.0.1:6379/0" if redis else "", queue_name=support.unique_name(),
        lease_seconds=8, recovery_interval=0.5, smtp_concurrency=THREADS, batch_size=100,
    )
    values.update(overrides)
    return make_settings(data_dir, **values)


@pytest.fixture
def shape(db_url, tmp_path):
    """The embedded shape on SQLite (one worker), or PostgreSQL + Redis with two workers."""
    with ArrivalServer() as server:
        runtime = Runtime(shape_settings(db_url, tmp_path / "data", server.url))
        queue = Queue(runtime)
        yield runtime, queue, server, (2 if db_url.startswith("postgresql") else 1)
        queue.huey.flush()
        runtime.dispose()
