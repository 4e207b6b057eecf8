"""Unsubscribing while the campaign is being sent: no mail reaches a person after their POST returned."""

from __future__ import annotations

import threading
import time

import httpx

from sendwell.campaigns.service import create_campaign
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact, run_once
from tests.optout.conftest import u

CONTACTS = 240


def test_no_mail_reaches_a_contact_after_their_one_click_post_returned(runtime, smtp_server, unused_port) -> None:
    # A fifth of the audience leaving mid-send is a spike the circuit breaker would pause the
    # campaign for (tests/insight/test_breaker.py); here the subject is the per-mail gate.
    runtime.replace_settings(runtime.settings.replace(
        smtp_url=smtp_server.url, alert_unsubscribe_critical=1.0, alert_unsubscribe_warn=1.0))
    arrived: dict[str, float] = {}
    original = smtp_server.handler.handle_DATA

    async def timed_data(server, session, envelope):  # type: ignore[no-untyped-def]
        reply = await original(server, session, envelope)  # waits at the server's gate while it is closed
        arrived[envelope.rcpt_tos[0]] = time.monotonic()  # the whole message is in our hands now
        return reply

    smtp_server.handler.handle_DATA = timed_data
    # The server holds the 11th mail at DATA: the first half of the clicks land while the
    # campaign is certainly mid-send, and the second half while it runs on.
    smtp_server.handler.close_after = 10
    with transaction(runtime.factory) as s:
        contacts = [(c.id, c.email) for c in (make_contact(s, country="DE") for _ in range(CONTACTS))]
        campaign = create_campaign(s, settings=runtime.settings, name="Busy", subject="News", html="<p>Hi</p>",
                                   segment="region = eu")
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign, batch_size=100)  # big batches: claimed long before they go out
        campaign_id = campaign.id
    # Every third contact of the later two thirds clicks one-click while the campaign runs.
    targets = contacts[CONTACTS // 3 :: 3]
    returned: dict[str, float] = {}

    with BackgroundServer(create_app(runtime, outbox=False), unused_port) as web:
        sender = threading.Thread(target=run_once, args=(runtime, campaign_id))
        sender.start()

        def click(chunk: list[tuple[int, str]]) -> None:
            with httpx.Client(base_url=web.url, timeout=30) as client:
                for contact_id, email in chunk:
                    response = client.post(u(runtime, contact_id, campaign_id=campaign_id),
                                           data={"List-Unsubscribe": "One-Click"})
                    assert response.status_code == 200
                    returned[email] = time.monotonic()

        try:
            assert smtp_server.handler.held.wait(60), "the campaign never reached its 11th mail"
            click(targets[: len(targets) // 2])
        finally:
            smtp_server.handler.gate.set()
        click(targets[len(targets) // 2 :])
        sender.join()

    late = {email: arrived[email] - t for email, t in returned.items() if email in arrived and arrived[email] > t}
    assert late == {}, f"mail reached {len(late)} contacts after their POST returned"
    # The test only means something if the sending really overlapped the clicks.
    assert max(arrived.values()) > min(returned.values())
    skipped = [email for email in returned if email not in arrived]
    assert skipped, "no contact was stopped mid-campaign"
    others = {email for _, email in contacts} - set(returned)
    assert others <= set(arrived)  # everyone else got the mail
