"""Real `sendwell worker` subprocesses and a bulk-seeded campaign, for the crash and scale-out tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Campaign, Consent, Contact, Send
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.suppression.service import hash_email
from tests.conftest import TEST_PEPPER, TEST_SECRET

SENDWELL = str(Path(sys.executable).with_name("sendwell"))


def seed_contacts(runtime: Any, count: int, *, domain: str = "buyers.example") -> None:
    """`count` contacts with express consent, inserted in bulk."""
    now = datetime.now(timezone.utc)
    pepper = runtime.settings.pepper
    rows = []
    for n in range(count):
        email = f"buyer{n}@{domain}"
        rows.append(dict(email=email, email_hash=hash_email(pepper, email), first_name=f"Anna{n}",
                         last_name="Müller", company=f"Importer {n} GmbH", job_title="", industry="lighting",
                         stage="prospect", country="DE", region="eu", language="de", timezone="", tags=[],
                         custom={}, source="test", frequency_tier="default", created_at=now, updated_at=now))
    with transaction(runtime.factory) as s:
        s.execute(insert(Contact), rows)
        ids = list(s.scalars(select(Contact.id)))
        s.execute(insert(Consent), [dict(contact_id=i, kind="express", source="test", obtained_at=now, ip="",
                                         wording="test") for i in ids])


def start_campaign(runtime: Any, queue: Any) -> int:
    """Create, plan and queue a campaign to every contact; returns its id."""
    with transaction(runtime.factory) as s:
        c = create_campaign(s, settings=runtime.settings, name="Crash", subject="Hello {{ contact.company }}",
                            html="<p>Dear {{ first_name }}, our new panels.</p>")
        plan_campaign(s, campaign=c)
        batches = queue_campaign(s, campaign=c, batch_size=runtime.settings.batch_size)
        campaign_id = c.id
    queue.enqueue_batches(campaign_id, batches)
    return campaign_id


def worker_env(settings: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")}
    env.update(
        SENDWELL_DATA_DIR=str(settings.data_dir), SENDWELL_DATABASE_URL=settings.effective_database_url,
        SENDWELL_QUEUE_URL=settings.queue_url, SENDWELL_QUEUE_NAME=settings.queue_name,
        SENDWELL_SMTP_URL=settings.smtp_url, SENDWELL_SECRET_KEY=TEST_SECRET, SENDWELL_HASH_PEPPER=TEST_PEPPER,
        SENDWELL_FROM=settings.from_, SENDWELL_BASE_URL=settings.base_url,
        SENDWELL_LEASE_SECONDS=str(settings.lease_seconds), SENDWELL_RECOVERY_INTERVAL=str(settings.recovery_interval),
        SENDWELL_SMTP_CONCURRENCY=str(settings.smtp_concurrency), SENDWELL_BATCH_SIZE=str(settings.batch_size),
        SENDWELL_DELIVERY_PROCESSES=os.environ.get("SENDWELL_DELIVERY_PROCESSES", "1"),
    )
    env.update(extra)
    return env


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")
    return subprocess.Popen([SENDWELL, "worker"], env=env, stdout=fh, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=120)


def wait_for(predicate: Any, what: str, timeout: float = 240.0, procs: list[Any] = (),
             describe: Any = None) -> None:
    """Poll until `predicate()`; the timeout only guards against a hang, it measures nothing.

    `describe()` says what the world looked like when it timed out (for the failure message)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"worker exited early with {p.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {describe()}" if describe else ""))
        time.sleep(0.05)


def campaign_finished(runtime: Any, campaign_id: int) -> bool:
    with transaction(runtime.factory) as s:
        return s.get(Campaign, campaign_id).status == "finished"


def states(runtime: Any, campaign_id: int) -> dict[str, int]:
    with transaction(runtime.factory) as s:
        return dict(s.execute(select(Send.state, func.count()).where(Send.campaign_id == campaign_id)
                              .group_by(Send.state)).all())


def receipts(server: Any) -> Counter[str]:
    return Counter(m.rcpt_tos[0] for m in list(server.messages))


def unique_name() -> str:
    return f"sendwell-test-{uuid.uuid4().hex[:10]}"
