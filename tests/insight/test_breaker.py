"""The circuit breaker: a spike of real one-click unsubscribes pauses a campaign mid-send."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from sendwell.db.models import Alert
from sendwell.db.session import transaction
from sendwell.delivery.service import campaign_status, create_campaign, plan_campaign, queue_campaign, run_campaign
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact, one_click_url, parse_strict


def test_unsubscribe_spike_pauses_the_campaign_mid_send(runtime, smtp_server, unused_port) -> None:
    settings = runtime.settings
    settings.smtp_url = smtp_server.url
    settings.base_url = f"http://127.0.0.1:{unused_port}"
    settings.alert_min_sample = 100
    settings.alert_check_interval = 0
    with transaction(runtime.factory) as s:
        for i in range(500):
            make_contact(s, country="DE" if i % 2 else "US", stage="new_lead")
        campaign = create_campaign(s, settings=settings, name="Badly targeted", subject="Buy now", html="<p>Hi</p>")
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign)
        campaign_id = campaign.id

    deliverer = runtime.make_deliverer()
    real_send = deliverer.transport.send
    clicked: list[str] = []

    def send_and_let_recipients_react(mail_from, rcpt_to, data):
        outcome = real_send(mail_from, rcpt_to, data)
        received = smtp_server.messages
        # After 150 mails, every German recipient so far clicks one-click, through real HTTP.
        if len(received) == 150 and not clicked:
            for message in received:
                msg = parse_strict(message.data)
                if message.rcpt_tos[0] and msg["To"] and _is_german(runtime, message.rcpt_tos[0]):
                    r = httpx.post(one_click_url(msg), data={"List-Unsubscribe": "One-Click"})
                    assert r.status_code == 200
                    clicked.append(message.rcpt_tos[0])
        return outcome

    deliverer.transport.send = send_and_let_recipients_react  # type: ignore[method-assign]
    with BackgroundServer(create_app(runtime), unused_port):
        run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
    deliverer.transport.close()

    with transaction(runtime.factory) as s:
        status = campaign_status(s, campaign_id=campaign_id)
        alerts = list(s.scalars(select(Alert).where(Alert.campaign_id == campaign_id)))
    assert len(clicked) > 50
    assert status["status"] == "paused"
    assert status["states"]["queued"] > 0, (status["states"], status["skipped"])  # the rest waits for a person
    assert status["states"]["sent"] < 500
    critical = [a for a in alerts if a.severity == "critical"]
    assert critical and critical[0].kind == "unsubscribe_spike"
    driver = critical[0].data["driver"]
    assert (driver["dimension"], driver["value"]) in {("region", "eu"), ("country", "DE")}
    assert len(smtp_server.messages) == status["states"]["sent"]


def _is_german(runtime, address: str) -> bool:
    from sendwell.db.models import Contact

    with transaction(runtime.factory) as s:
        return s.scalar(select(Contact.country).where(Contact.email == address)) == "DE"
