"""The circuit breaker: a spike of real one-click unsubscribes, or of real spam complaints
arriving through the inbound feedback path, pauses a campaign mid-send."""

from __future__ import annotations

import threading

import httpx
import pytest
from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Alert, Contact
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.progress import campaign_status
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.feedback.factories import arf
from tests.helpers import make_contact, one_click_url, parse_strict, run_once

CONTACTS = 1000


@pytest.mark.parametrize(("path", "alert_kind"), [("one_click", "unsubscribe_spike"), ("complaint", "complaint_spike")])
def test_a_spike_pauses_the_campaign_mid_send(runtime, smtp_server, unused_port, path, alert_kind) -> None:
    runtime.replace_settings(runtime.settings.replace(
        smtp_url=smtp_server.url, base_url=f"http://127.0.0.1:{unused_port}", alert_min_sample=100,
        alert_check_interval=0))
    settings = runtime.settings
    # The server holds the 151st mail at DATA: the people who got the first 150 react while
    # the campaign is certainly mid-send, and sending goes on once they have.
    smtp_server.handler.close_after = 150
    with transaction(runtime.factory) as s:
        for i in range(CONTACTS):
            make_contact(s, country="DE" if i % 2 else "US", stage="new_lead")
        campaign = create_campaign(s, settings=settings, name="Badly targeted", subject="Buy now", html="<p>Hi</p>")
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign)
        campaign_id = campaign.id
        german = set(s.scalars(select(Contact.email).where(Contact.country == "DE")))

    clicked: list[str] = []
    with BackgroundServer(create_app(runtime), unused_port):
        sender = threading.Thread(target=run_once, args=(runtime, campaign_id))
        sender.start()
        try:
            assert smtp_server.handler.held.wait(120), "the campaign never reached its 151st mail"
            germans = [m for m in list(smtp_server.messages) if m.rcpt_tos[0] in german]
            if path == "one_click":
                # Every German recipient so far clicks one-click, through real HTTP, mid-campaign.
                with httpx.Client(timeout=30) as client:
                    for message in germans:
                        response = client.post(one_click_url(parse_strict(message.data)),
                                               data={"List-Unsubscribe": "One-Click"})
                        assert response.status_code == 200
                        clicked.append(message.rcpt_tos[0])
            else:
                # Every tenth German recipient so far presses "spam": the provider's ARF report comes
                # back to the VERP address and goes through the inbound path the listener uses.
                from sendwell.feedback.inbound import process_inbound

                for message in germans[::10]:
                    report = arf(rcpt=message.rcpt_tos[0], to=message.mail_from,
                                 message_id=str(parse_strict(message.data)["Message-ID"]))
                    with transaction(runtime.factory) as s:
                        process_inbound(s, raw=report, rcpt_to=[message.mail_from], settings=settings)
                    clicked.append(message.rcpt_tos[0])
        finally:
            smtp_server.handler.gate.set()  # sending goes on; the breaker sees the spike
            sender.join()

    with transaction(runtime.factory) as s:
        status = campaign_status(s, campaign_id=campaign_id)
        alerts = list(s.scalars(select(Alert).where(Alert.campaign_id == campaign_id)))
    assert len(clicked) > (50 if path == "one_click" else 4)
    assert status["status"] == "paused"
    assert status["states"]["queued"] > 0, status["states"]  # the rest waits for a person to look
    # A complaint is also an opt-out, so the complaint path raises both alerts.
    critical = [a for a in alerts if a.severity == "critical" and a.kind == alert_kind]
    assert critical, [(a.kind, a.severity) for a in alerts]
    driver = critical[0].data["driver"]
    assert (driver["dimension"], driver["value"]) in {("region", "eu"), ("country", "DE")}
    # Thank-you mails to the leavers arrive too; count the campaign's own mails.
    campaign_mails = [m for m in smtp_server.messages
                      if str(parse_strict(m.data)["Feedback-ID"] or "").startswith(f"{campaign_id}:")]
    assert len(campaign_mails) == status["states"]["sent"]
