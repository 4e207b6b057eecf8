"""A worker SIGKILLed while a sequence's mail step is being sent: nobody is lost, each step runs once.

Real `sendwell worker` processes on PostgreSQL with the Redis queue, and a slow SMTP server on
loopback counting what it received. The worker enrols the contacts, runs the step and sends its
mails; it is killed a third of the way through and a second worker finishes. As with a
campaign (tests/reliability/test_crash.py): at most one duplicate per SMTP session open at the
kill, and every duplicate is one that recovery flagged as possibly sent twice.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from sendwell.db.models import (
    Contact,
    Send,
    SequenceEnrollment,
    SequenceStepCampaign,
    SequenceStepRun,
)
from sendwell.db.session import transaction
from sendwell.delivery.dkim import generate_private_key
from sendwell.runtime import Runtime
from sendwell.sequences.service import create_sequence
from sendwell.worker.queue import Queue
from tests.reliability.conftest import (
    THREADS,
    ArrivalHandler,
    ArrivalServer,
    record_figures,
    shape_settings,
)
from tests.sequences.test_sequences import FAIR
from tests.worker import support

pytestmark = pytest.mark.slow
N = 300
DELAY = 0.05  # seconds per mail: four sessions take about 4 s over the step, time to kill mid-way

# The trade fair sequence of the other tests, enrolling every contact the seeding creates.
STEP = {**FAIR, "trigger": {"kind": "contact_created", "source": "test"}}


@dataclass
class SlowHandler(ArrivalHandler):
    """Takes DELAY over each mail's DATA, as a busy receiving server does."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(DELAY)
        return await super().handle_DATA(server, session, envelope)


class SlowServer(ArrivalServer):
    def __init__(self) -> None:
        super().__init__()
        self.handler = SlowHandler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, decode_data=False)


@pytest.fixture
def shape(db_url, tmp_path):
    key = tmp_path / "dkim.pem"
    key.write_bytes(generate_private_key("ed25519"))
    signing = {"dkim_domain": "bright-lighting.example", "dkim_key_file": str(key),
               "privacy_url": "https://bright-lighting.example/privacy"}
    with SlowServer() as server:
        runtime = Runtime(shape_settings(db_url, tmp_path / "data", server.url, **signing))
        queue = Queue(runtime)
        env = support.worker_env(runtime.settings, **{f"SENDWELL_{k.upper()}": v for k, v in signing.items()})
        yield runtime, server, env
        queue.huey.flush()
        runtime.dispose()


def _step_campaign(runtime: Any, sequence_id: int) -> int | None:
    with transaction(runtime.factory) as s:
        return s.scalar(select(SequenceStepCampaign.campaign_id).where(
            SequenceStepCampaign.sequence_id == sequence_id, SequenceStepCampaign.step_id == "thanks"))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_worker_killed_mid_step_loses_nobody_and_runs_the_step_once_per_contact(shape, tmp_path) -> None:
    runtime, server, env = shape
    with transaction(runtime.factory) as s:
        sequence_id = create_sequence(s, settings=runtime.settings, data=STEP).id
    support.seed_contacts(runtime, N)  # created after the sequence: its scan enrols them all
    log = tmp_path / "worker.log"
    workers = [support.start_worker(env, log)]
    try:
        support.wait_for(lambda: server.received >= N // 3, "a third of the step's mails", procs=workers,
                         describe=lambda: f"received {server.received}; log {log.read_text()[-2000:]}")
        campaign_id = _step_campaign(runtime, sequence_id)
        assert campaign_id is not None
        support.stop(workers[0], signal.SIGKILL)
        received_at_kill = server.received
        assert received_at_kill < N, "the kill came too late to test anything"
        workers[0] = support.start_worker(env, log)
        support.wait_for(lambda: support.states(runtime, campaign_id) == {"sent": N}, "every step mail sent",
                         procs=workers, timeout=600,
                         describe=lambda: f"sends {support.states(runtime, campaign_id)}, received {server.received}")
    finally:
        for w in workers:
            support.stop(w, signal.SIGKILL)
    counts = server.receipts()
    assert set(counts) == {f"buyer{n}@buyers.example" for n in range(N)}, "a contact got no step mail"
    duplicated = {rcpt for rcpt, n in counts.items() if n > 1}
    extra = sum(counts.values()) - N
    with transaction(runtime.factory) as s:
        flagged = set(s.scalars(select(Contact.email).join(Send, Send.contact_id == Contact.id).where(
            Send.campaign_id == campaign_id, Send.possible_duplicate.is_(True))))
        enrolled = s.scalar(select(func.count()).select_from(SequenceEnrollment)
                            .where(SequenceEnrollment.sequence_id == sequence_id))
        runs = s.execute(select(SequenceStepRun.enrollment_id, func.count()).where(SequenceStepRun.step_id == "thanks")
                         .group_by(SequenceStepRun.enrollment_id)).all()
        run_sends = set(s.scalars(select(SequenceStepRun.send_id).where(SequenceStepRun.step_id == "thanks")))
        step_sends = set(s.scalars(select(Send.id).where(Send.campaign_id == campaign_id)))
        waiting = set(s.scalars(select(SequenceEnrollment.step_id).where(
            SequenceEnrollment.sequence_id == sequence_id)))
    record_figures("sequence-step-crash[postgresql+redis-SIGKILL]", recipients=N, smtp_sessions_per_worker=THREADS,
                   received_at_kill=received_at_kill, missing=N - len(counts), duplicates=extra,
                   flagged_possible_duplicates=len(flagged))
    assert enrolled == N and len(runs) == N and {n for _, n in runs} == {1}, "a step run missing or doubled"
    assert run_sends == step_sends and len(step_sends) == N  # each run names its contact's one send
    assert waiting == {"catalogue"}  # every pass moved on once, to the wait's next step
    assert duplicated <= flagged, "a mail went twice without being flagged"
    assert extra <= THREADS and len(flagged) <= THREADS
