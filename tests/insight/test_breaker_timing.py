"""The circuit breaker judges a campaign while it is being sent: a spike that starts mid-batch
pauses the campaign before the batch ends, and the worker's scan loop judges a campaign that
no deliverer will touch again."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Alert, Contact, Send
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends, new_claim_token
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.progress import campaign_status
from sendwell.optout.service import unsubscribe_contact
from sendwell.worker.queue import Queue
from tests.helpers import make_contact, parse_strict, run_once

CONTACTS = 400
HELD_AT = 150  # the server holds the 151st mail at DATA


def _queued_campaign(runtime: Any, contacts: int) -> int:
    with transaction(runtime.factory) as s:
        for _ in range(contacts):
            make_contact(s, stage="new_lead")
        campaign = create_campaign(s, settings=runtime.settings, name="Spike", subject="Hello", html="<p>Hi</p>")
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign)
        return campaign.id


def _unsubscribe(runtime: Any, campaign_id: int, contact_ids: list[int]) -> None:
    # Recorded by the opt-out service, as the one-click endpoint does, tied to the campaign.
    with transaction(runtime.factory) as s:
        for contact_id in contact_ids:
            unsubscribe_contact(s, contact_id=contact_id, method="one_click", campaign_id=campaign_id)


def _outcome(runtime: Any, campaign_id: int) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    with transaction(runtime.factory) as s:
        status = campaign_status(s, campaign_id=campaign_id)
        alerts = [(a.kind, a.severity) for a in s.scalars(select(Alert).where(Alert.campaign_id == campaign_id))]
    return status, alerts


def test_a_spike_mid_batch_pauses_a_single_batch_campaign(runtime, smtp_server) -> None:
    # One batch holds the whole audience: no later batch would ever judge the rates.
    runtime.replace_settings(runtime.settings.replace(
        smtp_url=smtp_server.url, alert_min_sample=100, alert_check_interval=0, batch_size=CONTACTS * 2))
    smtp_server.handler.close_after = HELD_AT
    campaign_id = _queued_campaign(runtime, CONTACTS)

    sender = threading.Thread(target=run_once, args=(runtime, campaign_id))
    sender.start()
    try:
        assert smtp_server.handler.held.wait(120), "the campaign never reached its held mail"
        # A fifth of the recipients so far leave while the batch is certainly mid-way.
        reached = [m.rcpt_tos[0] for m in list(smtp_server.messages)][::5]
        with transaction(runtime.factory) as s:
            leavers = list(s.scalars(select(Contact.id).where(Contact.email.in_(reached))))
        _unsubscribe(runtime, campaign_id, leavers)
        # Longer than the deliverer's one-second tick: the mail after the held one is
        # certainly past a tick, which judges the rates.
        time.sleep(1.2)
    finally:
        smtp_server.handler.gate.set()
        sender.join()

    status, alerts = _outcome(runtime, campaign_id)
    assert len(leavers) >= 25
    assert status["status"] == "paused", status
    # Stopped mid-batch: the rest of the one batch was handed back unsent, for a person to look at.
    assert status["states"]["sent"] < CONTACTS, status["states"]
    assert status["states"]["queued"] > 0, status["states"]
    assert ("unsubscribe_spike", "critical") in alerts, alerts
    campaign_mails = [m for m in smtp_server.messages
                      if str(parse_strict(m.data)["Feedback-ID"] or "").startswith(f"{campaign_id}:")]
    assert len(campaign_mails) == status["states"]["sent"]


def test_the_worker_pauses_a_campaign_whose_opt_outs_arrive_between_batches(runtime, smtp_server) -> None:
    # Nothing of the campaign is left to claim (the rest is claimed by a slow worker), so no
    # deliverer judges it again: the worker's scan loop must.
    runtime.replace_settings(runtime.settings.replace(
        smtp_url=smtp_server.url, alert_min_sample=100, alert_check_interval=1))
    campaign_id = _queued_campaign(runtime, 300)
    token = new_claim_token()
    with transaction(runtime.factory) as s:
        claimed = claim_sends(s, campaign_id=campaign_id, limit=300, token=token)
    deliverer = runtime.make_deliverer()
    try:
        assert deliverer.deliver(campaign_id, claimed[:200], token=token)["sent"] == 200
    finally:
        deliverer.transport.close()

    queue = Queue(runtime)
    stop = threading.Event()
    scanner = threading.Thread(target=queue._recovery_loop, args=(stop,))
    scanner.start()
    try:
        time.sleep(1.0)  # the loop's first pass (its once-a-minute re-check included) has run
        with transaction(runtime.factory) as s:
            sent = list(s.scalars(select(Send.contact_id).where(Send.id.in_(claimed[:200]))))
        _unsubscribe(runtime, campaign_id, sent[:40])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _outcome(runtime, campaign_id)[0]["status"] != "paused":
            time.sleep(0.2)
    finally:
        stop.set()
        scanner.join()
    status, alerts = _outcome(runtime, campaign_id)
    assert status["status"] == "paused", status
    assert ("unsubscribe_spike", "critical") in alerts, alerts
