"""Plan and deliver a campaign to a real SMTP server on loopback; every mail re-parses strictly."""

from __future__ import annotations

from email.utils import parseaddr

import pytest
from sqlalchemy import select

from sendwell.campaigns.service import CampaignError, create_campaign
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.progress import campaign_status
from sendwell.delivery.verp import read_verp
from sendwell.mail.transport import TransportUnavailable
from sendwell.optout.service import unsubscribe_contact
from tests.helpers import make_contact, parse_strict, run_once

HTML = "<p>Dear {{ first_name }},</p><p>Our new CE-marked panels for {{ contact.company }}.</p>"


def _campaign(runtime, segment="region = eu", **kw):
    with transaction(runtime.factory) as s:
        c = create_campaign(s, settings=runtime.settings, name="Spring", subject="News for {{ contact.company }}",
                            html=HTML, segment=segment, **kw)
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        return c.id


_run = run_once


@pytest.fixture
def smtp_runtime(runtime, smtp_server):
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    return runtime


def test_campaign_reaches_every_eligible_contact_with_compliant_headers(smtp_runtime, smtp_server) -> None:
    with transaction(smtp_runtime.factory) as s:
        eu = [make_contact(s, country=c) for c in ("DE", "FR", "IT")]
        make_contact(s, country="US")  # outside the segment
        make_contact(s, country="DE", consent=None)  # no consent on record
        eu_emails = {c.email for c in eu}
    campaign_id = _campaign(smtp_runtime)
    status = _run(smtp_runtime, campaign_id)
    assert status["states"]["sent"] == 3
    assert status["skipped"] == {"no_consent": 1}
    assert status["status"] == "finished"
    assert {m.rcpt_tos[0] for m in smtp_server.messages} == eu_emails
    for received in smtp_server.messages:
        msg = parse_strict(received.data)
        assert len(msg.get_all("List-Unsubscribe")) == 1
        uris = [u.strip() for u in str(msg["List-Unsubscribe"]).split(",")]
        assert uris[0].startswith("<https://mail.bright-lighting.example/u/") and uris[0].endswith(">")
        assert uris[1].startswith("<mailto:unsubscribe+")
        assert msg.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
        assert msg["List-Id"] and msg["Message-ID"] and msg["Date"]
        assert len(msg.get_all("From")) == 1
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        one_click = uris[0][1:-1]
        for body in (text, html):
            assert one_click in body  # a visible unsubscribe link in both parts (rule 9)
            assert "88 Jiangnan Road" in body and "Ningbo Bright Lighting" in body
        # VERP: the bounce address maps back to this very send and is signed.
        local = parseaddr(received.mail_from)[1].split("@")[0]
        assert local.startswith("bounce+")
        send_id = read_verp(smtp_runtime.settings.secret_keys, local.removeprefix("bounce+"))
        with transaction(smtp_runtime.factory) as s:
            send = s.get(Send, send_id)
            assert send.message_id == msg["Message-ID"]


def test_eu_mails_carry_the_data_notice_and_us_mails_do_not(smtp_runtime, smtp_server) -> None:
    with transaction(smtp_runtime.factory) as s:
        make_contact(s, country="DE", email="de@buyer.example", language="en")
        make_contact(s, country="US", email="us@buyer.example", language="en")
    _run(smtp_runtime, _campaign(smtp_runtime, segment=""))
    bodies = {m.rcpt_tos[0]: parse_strict(m.data).get_body(("plain",)).get_content() for m in smtp_server.messages}
    assert "controller of your personal data" in bodies["de@buyer.example"]
    assert "controller of your personal data" not in bodies["us@buyer.example"]


def test_unsubscribed_before_the_claim_is_skipped_at_send_time(smtp_runtime, smtp_server) -> None:
    with transaction(smtp_runtime.factory) as s:
        stay = make_contact(s, country="DE")
        leave = make_contact(s, country="DE")
    campaign_id = _campaign(smtp_runtime)  # both planned and queued
    with transaction(smtp_runtime.factory) as s:
        unsubscribe_contact(s, contact_id=leave.id, method="one_click")
    status = _run(smtp_runtime, campaign_id)
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [stay.email]
    assert status["skipped"] == {"unsubscribed": 1}


def test_4xx_defers_and_5xx_fails(smtp_runtime, smtp_server) -> None:
    with transaction(smtp_runtime.factory) as s:
        ok = make_contact(s, country="DE")
        later = make_contact(s, country="DE")
        gone = make_contact(s, country="DE")
    smtp_server.handler.replies[later.email] = "451 4.7.1 Greylisted, try again later"
    smtp_server.handler.replies[gone.email] = "550 5.1.1 No such user"
    status = _run(smtp_runtime, _campaign(smtp_runtime))
    assert status["states"]["sent"] == 1 and status["states"]["deferred"] == 1 and status["states"]["failed"] == 1
    assert status["status"] == "sending"  # a deferred mail keeps the campaign open
    with transaction(smtp_runtime.factory) as s:
        rows = {r.contact_id: r for r in s.scalars(select(Send))}
    assert rows[later.id].retry_at is not None and "451" in rows[later.id].last_error
    assert "550 5.1.1" in rows[gone.id].last_error
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [ok.email]


def test_unreachable_smtp_server_loses_nothing(runtime, unused_port) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=f"smtp://127.0.0.1:{unused_port}"))
    with transaction(runtime.factory) as s:
        for _ in range(3):
            make_contact(s, country="DE")
    campaign_id = _campaign(runtime)
    with pytest.raises(TransportUnavailable, match=f"cannot reach SMTP server 127.0.0.1:{unused_port}"):
        _run(runtime, campaign_id)
    with transaction(runtime.factory) as s:
        status = campaign_status(s, campaign_id=campaign_id)
        rows = list(s.scalars(select(Send).order_by(Send.id)))
    # A connection error defers the whole batch with a retry time; nothing is lost or sent.
    assert status["states"]["deferred"] == 3 and status["states"]["sending"] == 0
    assert all(r.retry_at is not None and "cannot reach SMTP server" in r.last_error for r in rows)
    assert [r.attempts for r in rows] == [1, 0, 0]  # only the mail it tried counts as an attempt
    assert rows[0].first_attempt_at is not None and rows[0].in_flight_at is None


def test_second_plan_is_idempotent_and_unknown_kind_is_refused(runtime) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE")
    campaign_id = _campaign(runtime)
    with transaction(runtime.factory) as s:
        from sendwell.campaigns.service import get_campaign

        plan_campaign(s, campaign=get_campaign(s, campaign_id=campaign_id))
        assert campaign_status(s, campaign_id=campaign_id)["total"] == 1
        with pytest.raises(CampaignError, match="unknown campaign kind 'blast'"):
            create_campaign(s, settings=runtime.settings, name="x", subject="y", html="z", kind="blast")


def test_header_injection_in_a_contact_name_cannot_add_headers(smtp_runtime, smtp_server) -> None:
    with transaction(smtp_runtime.factory) as s:
        make_contact(s, country="DE", first_name="Eve\r\nBcc: victim@evil.example", company="X\nY")
    _run(smtp_runtime, _campaign(smtp_runtime))
    msg = parse_strict(smtp_server.messages[0].data)
    assert msg["Bcc"] is None
    assert "\n" not in str(msg["Subject"])


def test_a_claim_takes_no_more_than_its_limit(runtime) -> None:
    """Regression: PostgreSQL once claimed every queued send through a rescanned locking subquery."""
    from sendwell.delivery.claims import claim_sends

    with transaction(runtime.factory) as s:
        for _ in range(7):
            make_contact(s, country="DE")
    campaign_id = _campaign(runtime)
    with transaction(runtime.factory) as s:
        first = claim_sends(s, campaign_id=campaign_id, limit=3)
    with transaction(runtime.factory) as s:
        second = claim_sends(s, campaign_id=campaign_id, limit=3)
        status = campaign_status(s, campaign_id=campaign_id)
    assert len(first) == 3 and len(second) == 3 and not set(first) & set(second)
    assert status["states"]["sending"] == 6 and status["states"]["queued"] == 1
