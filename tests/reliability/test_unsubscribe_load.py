"""10,000 one-click unsubscribes fired while a 100,000-recipient campaign is being sent.

Real `sendwell worker` processes send; the recipient-facing app runs under uvicorn; sixteen
client threads POST the RFC 8058 one-click bodies. Every POST must be recorded, and no
mail may reach a person after their POST returned (the SMTP server stamps each arrival on
the same monotonic clock as the clients).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from sendwell.db.models import Campaign, Contact, Event, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.optout.conftest import u
from tests.reliability.conftest import RECIPIENTS, progress, record_figures
from tests.worker import support

pytestmark = pytest.mark.slow

CLICKS = min(10_000, RECIPIENTS // 10)
CLIENTS = 16


def _finished_not_paused(runtime, campaign_id: int) -> bool:
    with transaction(runtime.factory) as s:
        status = s.get(Campaign, campaign_id).status
    assert status != "paused", "the circuit breaker paused the campaign: the test's thresholds did not reach it"
    return status == "finished"


def test_every_one_click_is_recorded_and_stops_mail_at_once(shape, tmp_path) -> None:
    runtime, queue, server, n_workers = shape
    # A tenth of the audience leaving is a spike the circuit breaker would pause the campaign
    # for (tests/insight/test_breaker.py); here the subject is the per-mail opt-out gate. The
    # thresholds go far above 100 %: people who click before their mail arrives (which only
    # a test can do) make the measured rate exceed 100 % while little has been delivered.
    quiet_breaker = dict(SENDWELL_ALERT_UNSUBSCRIBE_WARN="1000", SENDWELL_ALERT_UNSUBSCRIBE_CRITICAL="1000")
    runtime.replace_settings(runtime.settings.replace(alert_unsubscribe_warn=1000.0, alert_unsubscribe_critical=1000.0))
    support.seed_contacts(runtime, RECIPIENTS)
    with transaction(runtime.factory) as s:
        ids = list(s.execute(select(Contact.id, Contact.email).order_by(Contact.id)))
    # Spread over the whole list and clicked in random order, so that while the clicks run
    # some land far ahead of the sending, some behind it, and some right at its front.
    targets = ids[:: max(1, RECIPIENTS // CLICKS)][:CLICKS]
    random.Random(13).shuffle(targets)
    campaign_id = support.start_campaign(runtime, queue)
    links = [(email.lower(), u(runtime, contact_id, campaign_id=campaign_id)) for contact_id, email in targets]

    env = support.worker_env(runtime.settings, **quiet_breaker)
    log = tmp_path / "worker.log"
    workers = [support.start_worker(env, log) for _ in range(n_workers)]
    returned: dict[str, float] = {}
    statuses: Counter[int] = Counter()
    counted = threading.Lock()  # sixteen threads count: a bare `d[k] = d.get(k, 0) + 1` loses increments
    latencies: list[float] = []

    def click(chunk: list[tuple[str, str]]) -> None:
        with httpx.Client(base_url=web.url, timeout=60) as client:
            for email, link in chunk:
                began = time.monotonic()
                response = client.post(link, data={"List-Unsubscribe": "One-Click"})
                done = time.monotonic()
                with counted:
                    statuses[response.status_code] += 1
                latencies.append(done - began)
                if response.status_code == 200:
                    returned[email] = done

    try:
        with BackgroundServer(create_app(runtime, outbox=False), free_port()) as web:
            support.wait_for(lambda: server.received >= RECIPIENTS // 50, "the first mails", procs=workers,
                             timeout=1000,
                         describe=progress(runtime, campaign_id, server))
            clicks_began = time.monotonic()
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(click, [links[i::CLIENTS] for i in range(CLIENTS)]))
            clicks_took = time.monotonic() - clicks_began
            received_when_clicks_ended = server.received
            support.wait_for(lambda: _finished_not_paused(runtime, campaign_id), "the campaign to finish",
                             procs=workers, timeout=1000,
                         describe=progress(runtime, campaign_id, server))
    finally:
        for w in workers:
            support.stop(w, signal.SIGKILL)

    assert dict(statuses) == {200: CLICKS}, statuses
    with transaction(runtime.factory) as s:
        events = s.scalar(select(func.count()).select_from(Event).where(
            Event.kind == "unsubscribed", Event.campaign_id == campaign_id))
        suppressed = s.scalar(select(func.count()).select_from(Suppression).where(Suppression.scope == "all"))
    arrived = server.last_arrival()
    late = {email: arrived[email] - t for email, t in returned.items() if email in arrived and arrived[email] > t}
    stopped = sum(1 for email in returned if email not in arrived)
    mailed_first = sum(1 for email, t in returned.items() if email in arrived and arrived[email] <= t)
    latencies.sort()
    record_figures(f"unsubscribe-load[{'postgresql+redis' if n_workers > 1 else 'sqlite'}]",
                   recipients=RECIPIENTS, clicks=CLICKS, client_threads=CLIENTS, recorded_events=events,
                   suppressions=suppressed, mails_after_post=len(late), stopped_before_sending=stopped,
                   mailed_before_their_click=mailed_first,
                   clicks_seconds=round(clicks_took, 1), clicks_per_second=round(CLICKS / clicks_took),
                   p50_ms=round(latencies[len(latencies) // 2] * 1000, 1),
                   p99_ms=round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
                   received_when_clicks_ended=received_when_clicks_ended)
    assert events == CLICKS and suppressed == CLICKS
    assert late == {}, f"mail reached {len(late)} contacts after their POST returned"
    # The test only means something if the clicks really overlapped the sending.
    assert received_when_clicks_ended < RECIPIENTS - CLICKS, "the campaign was over before the clicks ended"
    assert stopped > 0, "no contact was stopped mid-campaign"
    assert mailed_first > 0, "the sending never caught up with a click: no race was tested"
    everyone_else = {email.lower() for _, email in ids} - set(returned)
    assert everyone_else <= set(arrived), "a contact who did not unsubscribe got nothing"
