"""The SMTP server misbehaving in every way it can during one campaign: it still finishes right.

A scripted aiosmtpd server on loopback refuses with 4xx and 5xx (RCPT and DATA), drops the
line after DATA, stalls past the client's timeout, and first offers STARTTLS with a
certificate the sender does not trust. When the retries come due the campaign finishes:
every temporary failure delivered on a later attempt, every permanent one failed and
classified by the bounce policy, nothing ever sent in clear text, nobody lost.
"""

from __future__ import annotations

import datetime
import ssl
from datetime import timedelta, timezone

import pytest
from sqlalchemy import select, update

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Contact, Event, Send, Suppression
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.progress import campaign_status
from sendwell.mail.transport import TransportUnavailable
from tests.delivery.faults import FaultySMTPServer
from tests.helpers import make_contact, run_once, self_signed_certificate
from tests.reliability.conftest import record_figures

pytestmark = pytest.mark.slow

PER_FAULT = 20
FAULTS = {
    # name: (where, script, final state, classification event or None)
    "ok": ("data", [], "sent", None),
    "greylisted": ("data", ["451 4.7.1 Greylisted, try again later"], "sent", None),
    "cut": ("data", ["disconnect"], "sent", None),
    "stalled": ("data", ["sleep:2.5"], "sent", None),
    "unknown": ("rcpt", "550 5.1.1 No such user", "failed", "bounced"),
    "full": ("rcpt", "552 5.2.2 Mailbox full", "failed", "bounced"),
    "spam": ("data", ["554 5.7.1 Message rejected as spam"], "failed", "sender_fault"),
}


def _make_due(runtime) -> None:
    with transaction(runtime.factory) as s:
        s.execute(update(Send).where(Send.state == "deferred")
                  .values(retry_at=datetime.datetime.now(timezone.utc) - timedelta(seconds=1)))


def test_every_smtp_fault_ends_classified_and_the_campaign_finishes(runtime, tmp_path) -> None:
    cert = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(*cert)
    with FaultySMTPServer(tls_context=server_tls, require_starttls=True) as server:
        runtime.replace_settings(runtime.settings.replace(smtp_url=f"smtp://127.0.0.1:{server.port}?starttls=1",
                                                          smtp_timeout=1.0))
        expected: dict[str, tuple[str, str | None]] = {}
        with transaction(runtime.factory) as s:
            for fault, (where, script, state, event) in FAULTS.items():
                for n in range(PER_FAULT):
                    email = f"{fault}{n}@buyers.example"
                    make_contact(s, email=email, country="DE")
                    expected[email] = (state, event)
                    if where == "rcpt":
                        server.handler.replies[email] = script
                    elif script:
                        server.handler.data_faults[email] = list(script)
            campaign = create_campaign(s, settings=runtime.settings, name="Faults", subject="News",
                                       html="<p>Hello {{ first_name }}</p>")
            plan_campaign(s, campaign=campaign)
            queue_campaign(s, campaign=campaign)
            campaign_id = campaign.id

        # 1. The certificate is not trusted: no session, nothing sent in clear, nothing lost.
        with pytest.raises(TransportUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            run_once(runtime, campaign_id)
        assert server.messages == []
        with transaction(runtime.factory) as s:
            errors = set(s.scalars(select(Send.last_error).where(Send.last_error.is_not(None))))
            assert campaign_status(s, campaign_id=campaign_id)["states"].get("sent", 0) == 0
        assert errors and all("CERTIFICATE_VERIFY_FAILED" in e for e in errors)

        # 2. The operator trusts the server's CA; retries come due until nothing is left.
        runtime.replace_settings(runtime.settings.replace(smtp_ca_file=cert[0]))
        rounds = 0
        status = {"status": "sending"}
        while status["status"] != "finished":
            rounds += 1
            assert rounds <= 6, f"the campaign did not finish: {status}"
            _make_due(runtime)
            status = run_once(runtime, campaign_id)

    with transaction(runtime.factory) as s:
        states = dict(s.execute(select(Contact.email, Send.state).join(Send, Send.contact_id == Contact.id)).all())
        events = {(email, kind) for email, kind in s.execute(
            select(Contact.email, Event.kind).join(Event, Event.contact_id == Contact.id))}
        suppressed = dict(s.execute(select(Contact.email, Suppression.reason)
                                    .join(Suppression, Suppression.email_hash == Contact.email_hash)).all())
    assert states == {email: state for email, (state, _) in expected.items()}
    for email, (_, event) in expected.items():
        if event is not None:
            assert (email, event) in events, f"{email}: no {event} event"
    # Only the mailbox that does not exist is suppressed; a full mailbox and a spam refusal are not.
    assert suppressed == {e: "hard_bounce" for e in expected if e.startswith("unknown")}
    received = sorted(m.rcpt_tos[0] for m in server.messages)
    delivered = sorted(e for e, (state, _) in expected.items() if state == "sent")
    # A stalled mail the server kept after the client gave up is the one duplicate SMTP allows.
    assert sorted(set(received)) == delivered
    assert all(r.startswith("stalled") for r in received if received.count(r) > 1)
    record_figures("smtp-faults", recipients=len(expected), rounds=rounds + 1,
                   sent=sum(1 for s in states.values() if s == "sent"),
                   failed=sum(1 for s in states.values() if s == "failed"),
                   suppressed=len(suppressed), duplicates_after_stall=len(received) - len(set(received)))
