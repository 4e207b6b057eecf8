"""The throttle: provider-group, per-domain and global limits, deferral when full, and the adaptive pace."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendwell.campaigns.service import create_campaign
from sendwell.config import parse_domain_limits, parse_provider_limits
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.limiter import Limit, MemoryStore, Pace
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.ports import Throttled
from sendwell.delivery.progress import campaign_status
from sendwell.delivery.providers import ProviderGroups
from sendwell.delivery.runner import run_campaign
from sendwell.delivery.throttle import Throttle, asks_to_slow_down, provider_limits
from tests.conftest import make_settings
from tests.delivery.faults import FaultySMTPServer
from tests.helpers import make_contact


class FakeClock:
    """Time that moves only when a test (or, with `advance`, a sleep) moves it.

    Without `advance` a sleep leaves the clock where it is: like many threads asking at one moment.
    """

    def __init__(self, advance: bool = True) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.advance = advance

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds if self.advance else 0.0


def _throttle(clock: FakeClock, *, groups: dict[str, str] | None = None, mx: dict[str, list[str]] | None = None,
              max_wait: float = 60.0, **kw) -> Throttle:
    limits = {name: Limit.from_dict(v) for name, v in parse_provider_limits(
        ",".join(f"{k}={v}" for k, v in (groups or {}).items())).items()}
    answers = mx or {}
    return Throttle(MemoryStore(Pace(recover=10.0), clock=clock),
                    ProviderGroups(lookup=lambda d: answers.get(d, []), look_up_special=True),
                    limits, max_wait=max_wait, clock=clock, sleep=clock.sleep, **kw)


def test_domain_limits_apply_per_domain_and_the_global_limit_to_all() -> None:
    clock = FakeClock()
    throttle = _throttle(clock, rate=100, domains={"gmail.com": 5})
    for _ in range(25):
        throttle.wait_for("someone@Gmail.com")
    assert clock.now == pytest.approx(4.0)  # 5 at once, then 20 more at 5/s
    start = clock.now
    for _ in range(50):
        throttle.wait_for("buyer@importer.example")  # unlimited domain: only the global 100/s
    assert clock.now - start < 1.0


def test_domains_of_one_provider_group_share_its_limit() -> None:
    clock = FakeClock()
    # A Google Workspace company domain (by MX), gmail.com and googlemail.com (by name): one group.
    throttle = _throttle(clock, groups={"google": "4/s"}, mx={"bright-buyer.example": ["aspmx.l.google.com"]})
    for rcpt in ("a@gmail.com", "b@googlemail.com", "c@bright-buyer.example", "d@gmail.com"):
        assert throttle.wait_for(rcpt) == 0  # the burst: one second's worth
    assert throttle.wait_for("e@bright-buyer.example") == pytest.approx(0.25)
    assert throttle.wait_for("f@other-buyer.example") == 0  # group "other": not limited here


def test_a_long_wait_raises_throttled_and_refusals_are_spread_out() -> None:
    clock = FakeClock(advance=False)
    throttle = _throttle(clock, groups={"qq": "2/s"}, max_wait=0.5)
    throttle.wait_for("a@qq.com")
    throttle.wait_for("b@qq.com")
    assert throttle.wait_for("c@qq.com") == pytest.approx(0.5)  # reserved: the next one would wait 1 s
    with pytest.raises(Throttled) as first:
        throttle.wait_for("d@qq.com")
    with pytest.raises(Throttled) as second:
        throttle.wait_for("e@qq.com")
    assert first.value.group == "qq" and first.value.key == "group:qq"
    # Both would fit 1.0 s from now; the second is told to come back one interval (0.5 s) later.
    assert first.value.retry_after == pytest.approx(1.0) and second.value.retry_after == pytest.approx(1.5)
    assert "throttled: group:qq" in str(first.value)


def test_provider_limits_have_defaults_the_setting_replaces_per_group() -> None:
    settings = make_settings(Path("/tmp/unused"), provider_limits="google=5/s;1000/h;conn=3;per_conn=50,qq=off")
    limits = provider_limits(settings)
    assert limits["google"] == Limit(per_second=5, per_hour=1000, connections=3, per_connection=50)
    assert not limits["qq"].active
    assert limits["microsoft"].per_second == 20  # a default
    for bad in ("google", "google=fast", "google=5/x", "google=-1/s", "google=conn=0", "Goo gle=5/s"):
        with pytest.raises(ValueError, match="SENDWELL_PROVIDER_LIMITS"):
            parse_provider_limits(bad)


def test_domain_limits_setting_is_parsed_and_bad_values_are_named() -> None:
    assert parse_domain_limits("gmail.com=50, outlook.com=30") == {"gmail.com": 50.0, "outlook.com": 30.0}
    assert parse_domain_limits("") == {}
    for bad in ("gmail.com", "gmail.com=fast", "gmail.com=0", "=5"):
        with pytest.raises(ValueError, match="SENDWELL_DOMAIN_LIMITS"):
            parse_domain_limits(bad)
    with pytest.raises(ValueError, match="SENDWELL_DOMAIN_LIMITS: 'x.example=-1'"):
        make_settings(Path("/tmp/unused"), domain_limits="x.example=-1")


@pytest.mark.parametrize(("code", "message", "slow"), [
    (421, "4.7.0 Try again later, closing connection.", True),
    (450, "4.7.28 Our system has detected an unusual rate of unsolicited mail", True),
    (421, "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume", True),
    (451, "4.7.500 Server busy. Please try again later", True),
    (450, "Too many messages from your IP, rate limited", True),
    (0, "connection refused: [Errno 111] Connection refused", True),
    (452, "4.2.2 The email account that you tried to reach is over quota", False),
    (451, "4.3.0 Temporary local problem", False),
    (450, "4.1.8 Sender address rejected: Domain not found", False),
])
def test_slow_down_answers_are_told_from_other_deferrals(code: int, message: str, slow: bool) -> None:
    assert asks_to_slow_down(code, message) is slow


def test_a_slow_down_answer_halves_its_groups_pace_only() -> None:
    clock = FakeClock()
    throttle = _throttle(clock, groups={"yahoo": "10/s", "google": "10/s"})
    throttle.done("a@yahoo.com", "temporary", 421, "4.7.0 [TSS04] temporarily deferred")
    throttle.done("b@gmail.com", "temporary", 452, "4.2.2 over quota")  # not a pace signal
    paces = {p["group"]: p for p in throttle.paces()}
    assert paces["yahoo"]["factor"] == 0.5 and paces["yahoo"]["per_second"] == 5 and paces["yahoo"]["slowdowns"] == 1
    assert paces["google"]["factor"] == 1.0 and paces["google"]["slowdowns"] == 0
    assert throttle.slowdowns == 1
    # The halved pace is what wait_for applies: 5/s, a burst of 5, then 0.2 s apart.
    for _ in range(5):
        assert throttle.wait_for("x@yahoo.com") == 0
    assert throttle.wait_for("x@yahoo.com") == pytest.approx(0.2)
    clock.now += 10 * 6  # six clean periods: back to the full rate
    assert {p["group"]: p for p in throttle.paces()}["yahoo"]["factor"] == 1.0


def test_in_flight_slots_are_freed_by_done_and_sessions_renewed_after_per_conn_mails() -> None:
    clock = FakeClock()
    throttle = _throttle(clock, groups={"apple": "conn=1;per_conn=2"}, max_wait=0.2)
    throttle.wait_for("a@icloud.com")
    other = _throttle(clock)
    other.store = throttle.store  # another thread's view: a different slot
    other._slot = lambda: "another-thread"  # type: ignore[method-assign]
    other.limits, other.max_wait = throttle.limits, 0.2
    with pytest.raises(Throttled):
        other.wait_for("b@icloud.com")  # the one slot is taken; it polled for max_wait
    assert clock.slept and sum(clock.slept) == pytest.approx(0.2)
    assert throttle.done("a@icloud.com", "sent", 250, "ok") is False
    other.wait_for("b@icloud.com")
    assert other.done("b@icloud.com", "sent", 250, "ok") is False
    other.wait_for("c@me.com")
    assert other.done("c@me.com", "sent", 250, "ok") is True  # two apple mails on this session: renew it


def _campaign(runtime, emails: list[str]) -> int:
    with transaction(runtime.factory) as s:
        for email in emails:
            make_contact(s, email=email)
        c = create_campaign(s, settings=runtime.settings, name="T", subject="s", html="<p>x</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        return c.id


def test_delivery_sends_other_mail_during_short_gaps_and_defers_a_full_group(runtime, smtp_server) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    campaign_id = _campaign(runtime, [f"b{n}@slowmail.example" for n in range(6)] + ["fast@other.example"])
    clock = FakeClock(advance=False)  # as if other threads kept the domain busy meanwhile
    d = runtime.make_deliverer()
    d.throttle = _throttle(clock, domains={"slowmail.example": 2}, max_wait=1.0)
    try:
        status = run_campaign(runtime.factory, d, campaign_id=campaign_id)
    finally:
        d.transport.close()
    # Two at once, two more reserved 0.5 s and 1 s ahead (a one-second wait at most), the last two
    # deferred; the mail to another domain goes meanwhile, before the two reserved ones.
    assert status["states"]["sent"] == 5 and status["deferred"] == {"throttled": 2}
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [
        "b0@slowmail.example", "b1@slowmail.example", "fast@other.example", "b2@slowmail.example",
        "b3@slowmail.example"]
    with transaction(runtime.factory) as s:
        held = s.query(Send).filter(Send.skip_reason == "throttled").all()
        assert [(x.attempts, x.first_attempt_at) for x in held] == [(0, None)] * 2  # not an attempt
        assert all(x.retry_at is not None and "throttled: domain:slowmail.example" in x.last_error for x in held)
        assert campaign_status(s, campaign_id=campaign_id)["deferred"] == {"throttled": 2}


def test_a_421_from_the_server_halves_the_recipients_group_pace(runtime) -> None:
    with FaultySMTPServer() as server:
        server.handler.data_faults["x@yahoo.com"] = ["421 4.7.0 [TSS04] Messages temporarily deferred"]
        runtime.replace_settings(runtime.settings.replace(smtp_url=server.url))
        campaign_id = _campaign(runtime, ["x@yahoo.com", "y@gmail.com"])
        clock = FakeClock()
        d = runtime.make_deliverer()
        d.throttle = _throttle(clock, groups={"yahoo": "10/s", "google": "10/s"})
        try:
            status = run_campaign(runtime.factory, d, campaign_id=campaign_id)
        finally:
            d.transport.close()
    assert status["states"]["sent"] == 1 and status["deferred"] == {"retry": 1}
    paces = {p["group"]: p["factor"] for p in d.throttle.paces()}
    assert paces == {"google": 1.0, "yahoo": 0.5}


def test_one_session_keeps_its_in_flight_slot_across_its_mails(runtime, smtp_server) -> None:
    # The deliverer takes the next mail's place before sending the current one: with conn=1 its
    # own session must not count twice, or every other mail would be deferred.
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    campaign_id = _campaign(runtime, [f"m{n}@icloud.com" for n in range(4)])
    d = runtime.make_deliverer()
    d.throttle = _throttle(FakeClock(), groups={"apple": "conn=1"}, max_wait=0.2)
    try:
        status = run_campaign(runtime.factory, d, campaign_id=campaign_id)
    finally:
        d.transport.close()
    assert status["states"]["sent"] == 4 and status["deferred"] == {}
    assert d.throttle.store._slots["group:apple"] == {}  # freed after the last one
