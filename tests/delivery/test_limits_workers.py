"""A provider group's limit holds across real `sendwell worker` processes: 2 embedded (SQLite), 4 on Redis.

An aiosmtpd sink notes when each mail arrives; mail to the limited group never exceeds the
limit plus one burst in any one-second window, while mail to other domains is not held up.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Consent, Contact
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.demo.smtp_server import free_port
from sendwell.runtime import Runtime
from sendwell.suppression.service import hash_email
from sendwell.worker.queue import Queue
from tests.conftest import make_settings
from tests.worker import support

pytestmark = pytest.mark.slow
LIMIT, GOOGLE, OTHER = 5, 30, 60


class TimingSink:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, decode_data=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.arrivals.append((time.monotonic(), envelope.rcpt_tos[0].rpartition("@")[2]))
        return "250 OK"

    def times(self, *domains: str) -> list[float]:
        with self.lock:
            return sorted(t for t, d in self.arrivals if d in domains)


def busiest_second(times: list[float]) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_a_group_limit_holds_across_worker_processes(db_url, tmp_path) -> None:
    redis = db_url.startswith("postgresql")
    sink = TimingSink()
    sink.controller.start()
    settings = make_settings(tmp_path / "data", database_url=db_url, smtp_url=f"smtp://127.0.0.1:{sink.port}",
                             queue_url="redis://127.0.0.1:6379/0" if redis else "", queue_name=support.unique_name(),
                             recovery_interval=0.5, smtp_concurrency=4, batch_size=10, provider_limits=f"google={LIMIT}/s")
    runtime = Runtime(settings)
    queue = Queue(runtime)
    now = datetime.now(timezone.utc)
    emails = [f"g{n}@{'gmail.com' if n % 2 else 'googlemail.com'}" for n in range(GOOGLE)] + [
        f"o{n}@importer{n % 7}.example" for n in range(OTHER)]
    emails = emails[::2] + emails[1::2]  # mixed in every batch
    with transaction(runtime.factory) as s:
        s.execute(insert(Contact), [dict(email=e, email_hash=hash_email(settings.pepper, e), first_name="Anna",
                                         last_name="", company="", job_title="", industry="", stage="prospect",
                                         country="DE", region="eu", language="en", timezone="", tags=[], custom={},
                                         source="test", frequency_tier="default", created_at=now, updated_at=now)
                                    for e in emails])
        s.execute(insert(Consent), [dict(contact_id=i, kind="express", source="test", obtained_at=now, ip="",
                                         wording="test") for i in s.scalars(select(Contact.id))])
        c = create_campaign(s, settings=settings, name="Limits", subject="Hello", html="<p>Hello</p>")
        plan_campaign(s, campaign=c)
        batches = queue_campaign(s, campaign=c, batch_size=settings.batch_size)
        campaign_id = c.id
    env = support.worker_env(settings, SENDWELL_PROVIDER_LIMITS=f"google={LIMIT}/s")
    workers = [support.start_worker(env, tmp_path / "w.log") for _ in range(4 if redis else 2)]
    try:
        queue.enqueue_batches(campaign_id, batches)
        support.wait_for(lambda: support.campaign_finished(runtime, campaign_id), "the campaign to finish",
                         procs=workers, describe=lambda: str(support.states(runtime, campaign_id)))
    finally:
        for w in workers:
            support.stop(w, signal.SIGTERM)
        sink.controller.stop()
        queue.huey.flush()
        runtime.dispose()
    google, other = sink.times("gmail.com", "googlemail.com"), sink.times(*{e.rpartition("@")[2] for e in emails
                                                                             if "importer" in e})
    assert len(google) == GOOGLE and len(other) == OTHER
    # At most the limit plus one burst (one second's worth) in any second; one more for the moment
    # between a mail's reserved time and its arrival at the sink. Without the limit all 30 arrive at once.
    assert busiest_second(google) <= 2 * LIMIT + 1
    assert google[-1] - google[0] >= (GOOGLE - 2 * LIMIT) / LIMIT - 1.0
    # The other domains are not held up behind the limited group: they are all done first.
    assert other[-1] < google[-1]
