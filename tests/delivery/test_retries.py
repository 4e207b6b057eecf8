"""4xx, 5xx, a disconnect during DATA and a slow server, against aiosmtpd on loopback; retries and give-up."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.deliverer import RetryPolicy
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.runner import run_campaign
from tests.delivery.faults import FaultySMTPServer
from tests.helpers import make_contact


@pytest.fixture(params=[False, True], ids=["lockstep", "pipelining"])
def server(request):
    """With and without RFC 2920 pipelining: the transport uses it when offered."""
    with FaultySMTPServer(pipelining=request.param) as s:
        yield s


@pytest.fixture
def rt(runtime, server):
    runtime.replace_settings(runtime.settings.replace(smtp_url=server.url, smtp_timeout=5))
    return runtime


def _campaign(runtime) -> int:
    with transaction(runtime.factory) as s:
        c = create_campaign(s, settings=runtime.settings, name="R", subject="Hi", html="<p>Hi {{ first_name }}</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        return c.id


def _run(runtime, campaign_id, **kw):
    d = runtime.make_deliverer()
    for k, v in kw.items():
        setattr(d, k, v)
    try:
        return run_campaign(runtime.factory, d, campaign_id=campaign_id)
    finally:
        d.transport.close()


def _sends(runtime) -> dict[str, Send]:
    from sendwell.db.models import Contact

    with transaction(runtime.factory) as s:
        return {c.email: send for send, c in s.execute(select(Send, Contact).join(Contact, Contact.id == Send.contact_id))}


def _make_due(runtime) -> None:
    with transaction(runtime.factory) as s:
        s.execute(update(Send).where(Send.state == "deferred").values(retry_at=datetime.now(timezone.utc) - timedelta(seconds=1)))


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    p = RetryPolicy(base=timedelta(minutes=5), max_delay=timedelta(hours=6))
    assert [p.delay(n).total_seconds() / 60 for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 320, 360]


def test_each_fault_ends_in_its_state_and_a_retry_delivers_the_temporary_ones(rt, server) -> None:
    with transaction(rt.factory) as s:
        ok, grey, gone, cut, slow = (make_contact(s, email=f"{n}@buyers.example") for n in
                                     ("ok", "grey", "gone", "cut", "slow"))
    server.handler.replies["grey@buyers.example"] = "451 4.7.1 Greylisted, try again later"
    server.handler.replies["gone@buyers.example"] = "550 5.1.1 No such user"
    server.handler.data_faults["cut@buyers.example"] = ["disconnect"]
    server.handler.data_faults["slow@buyers.example"] = ["sleep:0.5"]  # slow but within the timeout
    campaign_id = _campaign(rt)
    status = _run(rt, campaign_id)
    sends = _sends(rt)
    assert {e: s.state for e, s in sends.items()} == {
        "ok@buyers.example": "sent", "slow@buyers.example": "sent", "grey@buyers.example": "deferred",
        "gone@buyers.example": "failed", "cut@buyers.example": "deferred"}
    assert "550 5.1.1 No such user" in sends["gone@buyers.example"].last_error
    ok_send = sends["ok@buyers.example"]
    now = datetime.now(timezone.utc)
    assert ok_send.first_attempt_at <= ok_send.sent_at <= now and now - ok_send.sent_at < timedelta(minutes=5)
    assert ok_send.in_flight_at is None and ok_send.attempts == 1 and ok_send.message_id
    assert "connection lost" in sends["cut@buyers.example"].last_error
    for email in ("grey@buyers.example", "cut@buyers.example"):
        send = sends[email]
        assert send.attempts == 1 and send.first_attempt_at is not None and send.in_flight_at is None
        # The first retry waits the base delay (SENDWELL_RETRY_BASE_SECONDS, 5 min by default).
        assert timedelta(minutes=4) < send.retry_at - send.first_attempt_at <= timedelta(minutes=6)
    assert status["status"] == "sending"  # deferred mails keep the campaign open
    received = sorted(m.rcpt_tos[0] for m in server.messages)
    assert received == ["ok@buyers.example", "slow@buyers.example"]

    # The greylisting ends; when the retries come due, they go out and the campaign finishes.
    del server.handler.replies["grey@buyers.example"]
    _make_due(rt)
    status = _run(rt, campaign_id)
    assert status["status"] == "finished"
    assert status["states"]["sent"] == 4 and status["states"]["failed"] == 1
    assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(received + ["cut@buyers.example", "grey@buyers.example"])
    assert _sends(rt)["grey@buyers.example"].attempts == 2


def test_a_server_slower_than_the_timeout_defers_the_mail(rt, server) -> None:
    rt.replace_settings(rt.settings.replace(smtp_timeout=0.3))
    with transaction(rt.factory) as s:
        make_contact(s, email="slow@buyers.example")
    server.handler.data_faults["slow@buyers.example"] = ["sleep:1.5"]
    _run(rt, _campaign(rt))
    send = _sends(rt)["slow@buyers.example"]
    assert send.state == "deferred" and "timed out" in send.last_error


def test_temporary_failures_give_up_after_the_maximum_age(rt, server) -> None:
    with transaction(rt.factory) as s:
        make_contact(s, email="grey@buyers.example")
    server.handler.replies["grey@buyers.example"] = "452 4.2.2 Mailbox full"
    campaign_id = _campaign(rt)
    _run(rt, campaign_id)
    assert _sends(rt)["grey@buyers.example"].state == "deferred"
    # Pretend the first attempt was 71 h 55 min ago: the next retry (10 min) would land past 72 h.
    with transaction(rt.factory) as s:
        s.execute(update(Send).values(first_attempt_at=datetime.now(timezone.utc) - timedelta(hours=71, minutes=55)))
    _make_due(rt)
    status = _run(rt, campaign_id)
    send = _sends(rt)["grey@buyers.example"]
    assert send.state == "failed" and send.last_error.startswith("gave up after 2 attempts over 72 h")
    assert "452 4.2.2 Mailbox full" in send.last_error
    assert status["status"] == "finished"


def test_a_5xx_reaches_the_failure_hook_in_the_recording_transaction(rt, server) -> None:
    with transaction(rt.factory) as s:
        make_contact(s, email="gone@buyers.example")
        make_contact(s, email="ok@buyers.example")
    server.handler.replies["gone@buyers.example"] = "550 5.1.1 No such user"
    seen = []

    def hook(session, *, send_id, code, message):
        # The failure is already visible in this transaction: the policy can act on it.
        seen.append((session.get(Send, send_id).state, code, message))

    _run(rt, _campaign(rt), failure_hooks=[hook])
    assert seen == [("failed", 550, "5.1.1 No such user (in reply to RCPT TO command)")]


def test_refusals_in_our_own_session_are_judged_like_bounces(rt, server) -> None:
    from sendwell.db.models import Alert, Contact, Event, Suppression

    with transaction(rt.factory) as s:
        for name in ("gone", "spam", "full", "ok"):
            make_contact(s, email=f"{name}@buyers.example")
    server.handler.replies["gone@buyers.example"] = "550 5.1.1 No such user here"
    server.handler.replies["full@buyers.example"] = "552 5.2.2 Mailbox full"
    server.handler.data_faults["spam@buyers.example"] = ["554 5.7.1 Message rejected as spam"]
    _run(rt, _campaign(rt))  # the runtime's own failure hooks, as a worker has them
    with transaction(rt.factory) as s:
        suppressed = dict(s.execute(select(Contact.email, Suppression.reason)
                                    .join(Suppression, Suppression.email_hash == Contact.email_hash)).all())
        events = {(email, kind) for email, kind in s.execute(
            select(Contact.email, Event.kind).join(Event, Event.contact_id == Contact.id))}
        alerts = s.scalar(select(func.count()).select_from(Alert))
    # 5.1.1 is the mailbox: suppressed at once. 5.2.2 is soft; 5.7.1 is the sender's problem.
    assert suppressed == {"gone@buyers.example": "hard_bounce"}
    assert ("gone@buyers.example", "bounced") in events
    assert ("full@buyers.example", "bounced") in events
    assert ("spam@buyers.example", "sender_fault") in events and alerts >= 1
    assert _sends(rt)["full@buyers.example"].state == "failed"


def test_pause_mid_batch_stops_within_the_batch_and_resume_finishes(rt, server) -> None:
    from sendwell.campaigns.service import set_campaign_status

    with transaction(rt.factory) as s:
        for n in range(30):
            make_contact(s, email=f"b{n}@buyers.example")
    for n in range(30):
        server.handler.data_faults[f"b{n}@buyers.example"] = ["sleep:0.1"]
    campaign_id = _campaign(rt)

    def pause_after_a_few(_counts=None) -> bool:
        if len(server.messages) >= 3:
            with transaction(rt.factory) as s:
                if s.get(__import__("sendwell.db.models", fromlist=["Campaign"]).Campaign, campaign_id).status == "sending":
                    set_campaign_status(s, campaign_id=campaign_id, action="pause")
        return False

    _run(rt, campaign_id, should_stop=pause_after_a_few)
    states = {s.state for s in _sends(rt).values()}
    sent = len(server.messages)
    assert sent < 30 and states == {"sent", "queued"}  # the rest of the batch went back, unsent
    with transaction(rt.factory) as s:
        set_campaign_status(s, campaign_id=campaign_id, action="resume")
    status = _run(rt, campaign_id)
    assert status["status"] == "finished" and status["states"]["sent"] == 30
    assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(f"b{n}@buyers.example" for n in range(30))


def test_cancel_mid_batch_skips_the_rest(rt, server) -> None:
    from sendwell.campaigns.service import set_campaign_status

    with transaction(rt.factory) as s:
        for n in range(20):
            make_contact(s, email=f"c{n}@buyers.example")
    for n in range(20):
        server.handler.data_faults[f"c{n}@buyers.example"] = ["sleep:0.1"]
    campaign_id = _campaign(rt)

    def cancel_after_a_few() -> bool:
        if len(server.messages) >= 3:
            with transaction(rt.factory) as s:
                if s.get(__import__("sendwell.db.models", fromlist=["Campaign"]).Campaign, campaign_id).status == "sending":
                    set_campaign_status(s, campaign_id=campaign_id, action="cancel")
        return False

    status = _run(rt, campaign_id, should_stop=cancel_after_a_few)
    assert status["status"] == "cancelled"
    assert status["states"]["sent"] == len(server.messages) < 20
    assert status["skipped"] == {"cancelled": 20 - len(server.messages)}


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_transport_session_survives_refusals_and_keeps_leading_dots(pipelining) -> None:
    from sendwell.mail.transport import SmtpTransport

    body = b"From: a@x.example\r\nTo: b@y.example\r\nSubject: t\r\n\r\n.a line starting with a dot\r\n..two\r\nend"
    with FaultySMTPServer(pipelining=pipelining) as srv:
        srv.handler.replies["gone@y.example"] = "550 5.1.1 No such user"
        srv.handler.data_faults["full@y.example"] = ["552 5.2.2 Mailbox full"]
        t = SmtpTransport(srv.url, timeout=5)
        outcomes = [t.send("bounce@x.example", rcpt, body) for rcpt in
                    ("gone@y.example", "b@y.example", "full@y.example", "c@y.example")]
        assert bool(t._smtp.has_extn("pipelining")) is pipelining
        t.close()
    assert [(o.status, o.code) for o in outcomes] == [("permanent", 550), ("sent", 250), ("permanent", 552), ("sent", 250)]
    assert srv.handler.sessions == 1  # one session for all four: refusals reset, they do not reconnect
    assert [m.rcpt_tos for m in srv.messages] == [["b@y.example"], ["c@y.example"]]
    assert srv.messages[0].data.endswith(b"\r\n.a line starting with a dot\r\n..two\r\nend\r\n")
