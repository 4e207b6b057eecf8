"""Global and per-domain rate limits: token buckets on an injected clock, and wired into delivery."""

from __future__ import annotations

import pytest

from sendwell.campaigns.service import create_campaign
from sendwell.config import parse_domain_limits
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.runner import run_campaign
from sendwell.delivery.throttle import Throttle, TokenBucket
from tests.conftest import make_settings
from tests.helpers import make_contact


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_bucket_allows_its_rate_after_the_first_second_of_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    for _ in range(110):
        bucket.acquire()
    # 10 in the initial burst, then 100 more at 10/s: 10 seconds of waiting.
    assert clock.now == pytest.approx(10.0)


def test_domain_limits_apply_per_domain_and_the_global_limit_to_all() -> None:
    clock = FakeClock()
    throttle = Throttle(rate=100, domains={"gmail.com": 5}, clock=clock, sleep=clock.sleep)
    for _ in range(25):
        throttle.wait_for("someone@Gmail.com")
    assert clock.now == pytest.approx(4.0)  # 5 at once, then 20 more at 5/s
    start = clock.now
    for _ in range(50):
        throttle.wait_for("buyer@importer.example")  # unlimited domain: only the global 100/s
    assert clock.now - start < 1.0


def test_domain_limits_setting_is_parsed_and_bad_values_are_named() -> None:
    assert parse_domain_limits("gmail.com=50, outlook.com=30") == {"gmail.com": 50.0, "outlook.com": 30.0}
    assert parse_domain_limits("") == {}
    for bad in ("gmail.com", "gmail.com=fast", "gmail.com=0", "=5"):
        with pytest.raises(ValueError, match="SENDWELL_DOMAIN_LIMITS"):
            parse_domain_limits(bad)
    with pytest.raises(ValueError, match="SENDWELL_DOMAIN_LIMITS: 'x.example=-1'"):
        make_settings(__import__("pathlib").Path("/tmp/unused"), domain_limits="x.example=-1")


def test_delivery_waits_for_the_domain_bucket(runtime, smtp_server) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url))
    with transaction(runtime.factory) as s:
        for n in range(6):
            make_contact(s, email=f"b{n}@slowmail.example")
        make_contact(s, email="fast@other.example")
        c = create_campaign(s, settings=runtime.settings, name="T", subject="s", html="<p>x</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        campaign_id = c.id
    clock = FakeClock()
    d = runtime.make_deliverer()
    d.throttle = Throttle(domains={"slowmail.example": 2}, clock=clock, sleep=clock.sleep)
    try:
        status = run_campaign(runtime.factory, d, campaign_id=campaign_id)
    finally:
        d.transport.close()
    assert status["states"]["sent"] == 7
    # Two go at once, the other four wait half a second each; the other domain never waits.
    assert clock.slept == pytest.approx([0.5] * 4) and d.throttle.waited == pytest.approx(2.0)
