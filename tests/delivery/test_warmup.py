"""Warm-up plans: the daily allowance per provider group, held exactly under concurrent claimers, engaged first."""

from __future__ import annotations

import json
import re
import threading
from datetime import date, datetime, time, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select, update

from sendwell.campaigns.service import create_campaign
from sendwell.cli.main import cli, register_commands
from sendwell.db.models import Consent, Contact, Event, ProviderMx, Send, SendState
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.progress import campaign_status
from sendwell.delivery.warmup import (
    DEFAULT_SCHEDULE,
    WarmupError,
    parse_schedule,
    plan_status,
    start_plan,
    stop_plan,
)
from sendwell.runtime import Runtime
from sendwell.suppression.service import hash_email
from tests.helpers import TEST_PEPPER

register_commands()

DAY1 = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)  # a Wednesday, noon UTC
DAY2 = DAY1 + timedelta(days=1)


def _audience(session, n: int, domain: str = "gmail.com", *, first: int = 0, country: str = "DE",
              region: str = "eu", tz: str = "") -> list[int]:
    """`n` consenting contacts at `domain`, one insert each for contacts and consents; their ids in order."""
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = [{"email": f"buyer{first + i}@{domain}", "email_hash": hash_email(TEST_PEPPER, f"buyer{first + i}@{domain}"),
             "country": country, "region": region, "timezone": tz, "language": "de", "stage": "prospect",
             "tags": [], "custom": {},
             # Signed up one minute apart: the later the index, the newer the signup.
             "created_at": base + timedelta(minutes=first + i)} for i in range(n)]
    ids = list(session.scalars(insert(Contact).returning(Contact.id), rows))
    session.execute(insert(Consent), [{"contact_id": i, "kind": "express", "source": "test", "wording": "test",
                                       "obtained_at": base} for i in ids])
    return ids


def _campaign(runtime, *, kind: str = "marketing", settings=None, name: str = "Winter range", segment: str = "") -> int:
    with transaction(runtime.factory) as s:
        c = create_campaign(s, settings=runtime.settings, name=name, subject="New panels",
                            html="<p>Hello {{ first_name }}</p>", kind=kind, segment=segment)
        plan_campaign(s, campaign=c, now=DAY1 - timedelta(hours=1), settings=settings or runtime.settings)
        queue_campaign(s, campaign=c)
        return c.id


def _start(runtime, schedule: str = "50,100,200", start: date = DAY1.date()) -> int:
    with transaction(runtime.factory) as s:
        return start_plan(s, target="bright-lighting.example", schedule=parse_schedule(schedule), start=start).id


def _drain(runtime, campaign_id: int, now: datetime, *, limit: int = 200, barrier=None) -> list[int]:
    """Claim until nothing is due (as a worker would), returning every send claimed."""
    if barrier is not None:
        barrier.wait()
    taken: list[int] = []
    for _ in range(1000):
        with transaction(runtime.factory) as s:
            got = claim_sends(s, campaign_id=campaign_id, limit=limit, now=now)
            due = s.scalar(select(func.count()).select_from(Send).where(
                Send.campaign_id == campaign_id,
                (Send.state == SendState.QUEUED.value)
                | ((Send.state == SendState.DEFERRED.value) & (Send.retry_at <= now))))
        taken += got
        if not got and not due:
            return taken
    raise AssertionError("claims never ran dry")


def _deferred(runtime, campaign_id: int) -> dict[str | None, int]:
    with transaction(runtime.factory) as s:
        return dict(s.execute(select(Send.skip_reason, func.count()).where(
            Send.campaign_id == campaign_id, Send.state == SendState.DEFERRED.value).group_by(Send.skip_reason)).all())


def _retry_times(runtime, campaign_id: int) -> set[datetime]:
    with transaction(runtime.factory) as s:
        return set(s.scalars(select(Send.retry_at).where(
            Send.campaign_id == campaign_id, Send.skip_reason == "warm_up")))


# ---------------------------------------------------------------- the schedule


def test_schedule_reads_every_group_and_overrides_and_names_the_bad_entry() -> None:
    assert parse_schedule("50,100, 200") == {"*": [50, 100, 200]}
    assert parse_schedule("50,100;google=20,40") == {"*": [50, 100], "google": [20, 40]}
    assert parse_schedule("google=20,40")["*"] == list(DEFAULT_SCHEDULE)
    with pytest.raises(WarmupError, match=r"'abc' \(day 2\)"):
        parse_schedule("50,abc")
    with pytest.raises(WarmupError, match=r"'0' \(google's day 1\)"):
        parse_schedule("50;google=0,5")
    assert len(DEFAULT_SCHEDULE) == 30 and DEFAULT_SCHEDULE[0] == 50
    assert list(DEFAULT_SCHEDULE) == sorted(DEFAULT_SCHEDULE)


# ---------------------------------------------------------------- enforcement


def test_a_campaign_of_5000_sends_the_days_allowance_and_tomorrow_the_next(runtime, settings) -> None:
    with transaction(runtime.factory) as s:
        _audience(s, 5000)
    _start(runtime)
    campaign_id = _campaign(runtime)

    first = _drain(runtime, campaign_id, DAY1)
    assert len(first) == 50
    assert _deferred(runtime, campaign_id) == {"warm_up": 4950}
    # They wait for the next day's allowance (no sending window: midnight UTC).
    assert _retry_times(runtime, campaign_id) == {datetime(2026, 12, 3, tzinfo=timezone.utc)}
    assert _drain(runtime, campaign_id, DAY1 + timedelta(hours=11)) == []  # still today: nothing more

    # A restarted process finds the plan in the database.
    runtime.dispose()
    again = Runtime(settings)
    try:
        second = _drain(again, campaign_id, DAY2)
        assert len(second) == 100 and not set(first) & set(second)
        assert _deferred(again, campaign_id) == {"warm_up": 4850}
        with transaction(again.factory) as s:
            status = campaign_status(s, campaign_id=campaign_id)
            plans = plan_status(s, now=DAY2)
        assert status["deferred"] == {"warm_up": 4850}
        assert status["waiting_for_warm_up"] == 4850
        [plan] = plans
        assert plan["day"] == 2 and plan["state"] == "active"
        google = next(g for g in plan["groups"] if g["group"] == "google")
        assert (google["allowance"], google["used"], google["remaining"]) == (100, 100, 0)
    finally:
        again.dispose()


def test_each_provider_group_has_its_own_allowance(runtime) -> None:
    with transaction(runtime.factory) as s:
        _audience(s, 120, "gmail.com")
        _audience(s, 120, "outlook.com", first=1000)
        _audience(s, 30, "licht-import.example", first=2000)
        # A company domain hosted by Google Workspace, as the throttle's MX lookup stored it.
        _audience(s, 40, "leuchten-handel.example", first=3000)
        s.add(ProviderMx(domain="leuchten-handel.example", mx_hosts="aspmx.l.google.com alt1.aspmx.l.google.com",
                         provider="google", checked_at=DAY1, expires_at=DAY1 + timedelta(days=1)))
    _start(runtime, "50;google=20")
    campaign_id = _campaign(runtime)
    taken = _drain(runtime, campaign_id, DAY1)
    with transaction(runtime.factory) as s:
        emails = s.scalars(select(Contact.email).join(Send, Send.contact_id == Contact.id).where(Send.id.in_(taken)))
        by_domain: dict[str, int] = {}
        for email in emails:
            by_domain[email.split("@")[1]] = by_domain.get(email.split("@")[1], 0) + 1
        status = {g["group"]: g for g in plan_status(s, now=DAY1)[0]["groups"]}
    assert by_domain.get("gmail.com", 0) + by_domain.get("leuchten-handel.example", 0) == 20
    assert (by_domain["outlook.com"], by_domain["licht-import.example"]) == (50, 30)
    assert (status["google"]["used"], status["google"]["remaining"]) == (20, 0)
    assert (status["microsoft"]["used"], status["microsoft"]["remaining"]) == (50, 0)
    assert (status["other"]["used"], status["other"]["remaining"]) == (30, 20)


def test_two_claimers_at_once_send_exactly_the_allowance_and_the_most_engaged(runtime) -> None:
    with transaction(runtime.factory) as s:
        ids = _audience(s, 600)
        engaged = ids[7::12]  # 50 people spread over the whole list, each with a recent click of their own
        s.execute(update(Contact).where(Contact.id.in_(engaged)).values(last_engaged_at=DAY1 - timedelta(days=3)))
    _start(runtime)
    campaign_id = _campaign(runtime)
    results = _concurrently(*[lambda b: _drain(runtime, campaign_id, DAY1, limit=40, barrier=b)] * 2)
    taken = results[0] + results[1]
    assert len(taken) == len(set(taken)) == 50
    with transaction(runtime.factory) as s:
        contacts = set(s.scalars(select(Send.contact_id).where(Send.id.in_(taken))))
    assert contacts == set(engaged)
    assert _deferred(runtime, campaign_id) == {"warm_up": 550}


def _concurrently(*jobs) -> list:
    """Run each job in its own thread, started together; their results in order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = jobs[n](barrier)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_two_campaigns_claimed_at_once_share_one_allowance(runtime) -> None:
    with transaction(runtime.factory) as s:
        _audience(s, 300)
        _audience(s, 300, first=1000, country="US", region="us")
    _start(runtime)
    first = _campaign(runtime, segment="region = eu")
    second = _campaign(runtime, name="Spare parts", segment="region = us")
    taken = _concurrently(lambda b: _drain(runtime, first, DAY1, limit=10, barrier=b),
                          lambda b: _drain(runtime, second, DAY1, limit=10, barrier=b))
    assert len(taken[0]) + len(taken[1]) == 50
    assert sum(_deferred(runtime, first).values()) + sum(_deferred(runtime, second).values()) == 550
    with transaction(runtime.factory) as s:
        [plan] = plan_status(s, now=DAY1)
    assert next(g for g in plan["groups"] if g["group"] == "google")["used"] == 50


def test_engaged_first_counts_people_not_machines_then_newest_signups(runtime) -> None:
    with transaction(runtime.factory) as s:
        ids = _audience(s, 600)  # three batches: the ranking spans the campaign, not one batch
        clicked, scanned, opened = ids[410:420], ids[420:430], ids[230:235]
        s.execute(insert(Event), [{"kind": "clicked", "contact_id": i, "occurred_at": DAY1 - timedelta(days=2),
                                   "machine": False, "data": {}} for i in clicked]
                  + [{"kind": "clicked", "contact_id": i, "occurred_at": DAY1 - timedelta(days=1),
                      "machine": True, "machine_reason": "scanner_user_agent", "data": {}} for i in scanned]
                  + [{"kind": "opened", "contact_id": i, "occurred_at": DAY1 - timedelta(days=5),
                      "machine": False, "data": {}} for i in opened])
    _start(runtime, "25")
    campaign_id = _campaign(runtime)
    taken = _drain(runtime, campaign_id, DAY1)
    with transaction(runtime.factory) as s:
        contacts = set(s.scalars(select(Send.contact_id).where(Send.id.in_(taken))))
    # The 15 people who clicked or opened, then the 10 newest signups; scanner clicks count for nothing.
    assert contacts == set(clicked) | set(opened) | set(ids[-10:])


def test_waiting_mail_goes_when_the_recipients_window_opens_the_next_day(runtime, settings) -> None:
    with transaction(runtime.factory) as s:
        _audience(s, 80, tz="Europe/Berlin")
    _start(runtime)
    campaign_id = _campaign(runtime, settings=settings.replace(send_window="mon-fri 09:00-17:00"))
    assert len(_drain(runtime, campaign_id, DAY1)) == 50  # 13:00 in Berlin: inside the window
    assert _deferred(runtime, campaign_id) == {"warm_up": 30}
    # Thursday 09:00 in Berlin (UTC+1 in December).
    assert _retry_times(runtime, campaign_id) == {datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)}
    assert _drain(runtime, campaign_id, datetime(2026, 12, 3, 7, 59, tzinfo=timezone.utc)) == []
    assert len(_drain(runtime, campaign_id, datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc))) == 30


def test_stopping_the_plan_ends_enforcement_and_frees_the_waiting_mail(runtime) -> None:
    with transaction(runtime.factory) as s:
        _audience(s, 300)
    plan_id = _start(runtime)
    campaign_id = _campaign(runtime)
    assert len(_drain(runtime, campaign_id, DAY1)) == 50
    with transaction(runtime.factory) as s:
        plan, released = stop_plan(s, plan_id=plan_id, now=DAY1 + timedelta(minutes=5))
    assert released == 250 and plan.stopped_at is not None
    assert len(_drain(runtime, campaign_id, DAY1 + timedelta(minutes=6))) == 250
    assert _deferred(runtime, campaign_id) == {}


def test_a_plan_limits_nothing_before_its_start_nor_after_its_last_day_nor_transactional_mail(runtime) -> None:
    with transaction(runtime.factory) as s:
        _audience(s, 120)
    _start(runtime, "50,60", start=DAY2.date())
    campaign_id = _campaign(runtime)
    receipts = _campaign(runtime, kind="transactional")
    assert len(_drain(runtime, receipts, DAY2)) == 120  # a receipt never waits
    assert len(_drain(runtime, campaign_id, DAY1)) == 120  # the plan starts tomorrow
    with transaction(runtime.factory) as s:
        [plan] = plan_status(s, now=DAY2 + timedelta(days=2))
    assert plan["state"] == "ended"


def test_one_running_plan_per_target_until_it_ends(runtime) -> None:
    today = datetime.now(timezone.utc).date()
    _start(runtime, "50,100", start=today - timedelta(days=5))  # ended: a new plan may start
    _start(runtime, start=today)
    with pytest.raises(WarmupError, match=r"already has a warm-up plan \(#2"):
        _start(runtime, start=today)


# ---------------------------------------------------------------- the command line


@pytest.fixture
def env(settings, db_url):
    return {"SENDWELL_DATA_DIR": str(settings.data_dir), "SENDWELL_DATABASE_URL": db_url,
            "SENDWELL_SECRET_KEY": settings.secret_key, "SENDWELL_HASH_PEPPER": settings.hash_pepper,
            "SENDWELL_FROM": settings.from_, "SENDWELL_WARMUP_SCHEDULE": None}


def _run(env, *args: str):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_warmup_commands_start_report_and_stop(env, runtime) -> None:
    none = _run(env, "warmup", "status")
    assert none.exit_code == 0 and "no warm-up plan" in none.output

    bad = _run(env, "warmup", "start", "--schedule", "50,abc")
    assert bad.exit_code != 0 and "--schedule: 'abc' (day 2) is not a whole number" in bad.output
    bad_ip = _run(env, "warmup", "start", "--ip", "300.1.2.3")
    assert bad_ip.exit_code != 0 and "--ip '300.1.2.3' is not an IPv4 or IPv6 address" in bad_ip.output
    bad_day = _run(env, "warmup", "start", "--start-date", "2026-13-01")
    assert bad_day.exit_code != 0 and "--start-date '2026-13-01' is not a date" in bad_day.output

    today = datetime.now(timezone.utc).date()
    started = _run(env, "warmup", "start", "--schedule", "50,100;google=20,40", "--start-date", today.isoformat())
    assert started.exit_code == 0, started.output
    assert f"warm-up plan #1 started for domain bright-lighting.example on {today}" in started.output
    again = _run(env, "warmup", "start")
    assert again.exit_code != 0 and "already has a warm-up plan (#1" in again.output

    with transaction(runtime.factory) as s:
        _audience(s, 30)
    campaign_id = _campaign(runtime)
    assert len(_drain(runtime, campaign_id, datetime.combine(today, time(12), tzinfo=timezone.utc))) == 20

    text = _run(env, "warmup", "status", "--as-of", f"{today}T15:00")
    assert text.exit_code == 0
    assert f"warm-up #1 of domain bright-lighting.example, started {today}: day 1 of 2" in text.output
    assert re.search(r"^  google +20 +20 +0$", text.output, re.M), text.output
    assert re.search(r"^  every other +50 +0 +50$", text.output, re.M), text.output
    assert f"campaign {campaign_id} “Winter range”: 10 waiting for warm-up" in text.output
    data = json.loads(_run(env, "warmup", "status", "--as-of", str(today + timedelta(days=1)), "--json").output)
    [plan] = data["plans"]
    assert plan["day"] == 2 and {g["group"]: g["allowance"] for g in plan["groups"]} == {"google": 40, "*": 100}
    assert data["waiting"] == [{"campaign_id": campaign_id, "name": "Winter range", "waiting": 10}]

    stopped = _run(env, "warmup", "stop")
    assert stopped.exit_code == 0
    assert stopped.output.strip() == ("stopped warm-up plan #1 of domain bright-lighting.example; "
                                      "10 mails waiting for warm-up go out at the next scan")
    nothing = _run(env, "warmup", "stop")
    assert nothing.exit_code != 0 and "no running warm-up plan" in nothing.output


def test_warmup_schedule_setting_is_the_default_and_a_bad_one_is_named(env, runtime) -> None:
    env["SENDWELL_WARMUP_SCHEDULE"] = "30,60;qq=5,10"
    started = _run(env, "warmup", "start", "--ip", "192.0.2.10", "--json")
    assert started.exit_code == 0, started.output
    plan = json.loads(started.output)
    assert (plan["kind"], plan["target"]) == ("ip", "192.0.2.10")
    assert plan["schedule"] == {"*": [30, 60], "qq": [5, 10]}
    env["SENDWELL_WARMUP_SCHEDULE"] = "30,sixty"
    bad = _run(env, "warmup", "start")
    assert bad.exit_code != 0 and "SENDWELL_WARMUP_SCHEDULE: 'sixty' (day 2)" in bad.output
    env["SENDWELL_WARMUP_SCHEDULE"] = "30;60"
    twice = _run(env, "warmup", "start")
    assert twice.exit_code != 0 and "the schedule of '*' is given twice" in twice.output
