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
from sqlalchemy import func, select

from sendwell.config import Settings
from sendwell.db.models import Send
from sendwell.db.session import transaction
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


# The recovery settings a deployment runs with (config.py defaults): the crash, restart and
# `send --wait` tests measure recovery with these, not with a short lease.
DEFAULT_RECOVERY = {name: Settings.model_fields[name].default
                    for name in ("lease_seconds", "recovery_interval", "heartbeat_interval", "heartbeat_timeout")}


@dataclass
class Fault:
    """What was claimed and sent when a fault hit, to tell when sending has resumed after it."""

    at: float
    claimed: dict[int, str | None]  # send id -> its claim token at the fault
    sent: int

    @classmethod
    def now(cls, runtime: Any, campaign_id: int) -> Fault:
        with transaction(runtime.factory) as s:
            claimed = dict(s.execute(select(Send.id, Send.claim_token).where(Send.campaign_id == campaign_id,
                                                                            Send.state == "sending")).all())
        return cls(time.monotonic(), claimed, _sent(runtime, campaign_id))

    def resumed(self, runtime: Any, campaign_id: int) -> bool:
        """No send is held any more by a claim made before the fault, and mail went out since.

        A recovered send goes back to the queue and waits its turn behind the others; the
        stall a fault can cause is the time its claims stay held, which this measures.
        """
        with transaction(runtime.factory) as s:
            now = dict(s.execute(select(Send.id, Send.claim_token).where(
                Send.id.in_(list(self.claimed)), Send.state == "sending")).all()) if self.claimed else {}
        held = [i for i, token in now.items() if token == self.claimed[i]]
        return not held and _sent(runtime, campaign_id) > self.sent

    def wait_resumed(self, runtime: Any, campaign_id: int, procs: Any = ()) -> float:
        """Seconds from the fault until sending resumed (support.wait_for's guard against a hang)."""
        support.wait_for(lambda: self.resumed(runtime, campaign_id), "sending to resume", timeout=600, procs=procs)
        return time.monotonic() - self.at


def _sent(runtime: Any, campaign_id: int) -> int:
    with transaction(runtime.factory) as s:
        return s.scalar(select(func.count()).select_from(Send).where(Send.campaign_id == campaign_id,
                                                                      Send.state == "sent")) or 0


@pytest.fixture
def shape(db_url, tmp_path):
    """The embedded shape on SQLite (one worker), or PostgreSQL + Redis with two workers."""
    with ArrivalServer() as server:
        runtime = Runtime(shape_settings(db_url, tmp_path / "data", server.url))
        queue = Queue(runtime)
        yield runtime, queue, server, (2 if db_url.startswith("postgresql") else 1)
        queue.huey.flush()
        runtime.dispose()


@pytest.fixture
def default_shape(db_url, tmp_path):
    """`shape` with the default lease, scan interval and heartbeat settings."""
    with ArrivalServer() as server:
        runtime = Runtime(shape_settings(db_url, tmp_path / "data", server.url, **DEFAULT_RECOVERY))
        queue = Queue(runtime)
        yield runtime, queue, server, (2 if db_url.startswith("postgresql") else 1)
        queue.huey.flush()
        runtime.dispose()
