"""Shared limits: the same cases on the memory, SQLite (one machine) and Redis (every machine) stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from sendwell.delivery.limiter import COOLDOWN, POLL, SLOT_SECONDS, Limit, MemoryStore, Pace, RedisStore, SqliteStore
from tests.helpers import redis_or_skip

REDIS_URL = os.environ.get("SENDWELL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0  # an absolute time: windows are aligned to it

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path) -> Iterator[tuple[object, Clock]]:
    clock = Clock()
    pace = Pace(recover=10.0, step=0.1)
    if request.param == "memory":
        yield MemoryStore(pace, clock=clock), clock
    elif request.param == "sqlite":
        s = SqliteStore(tmp_path / "limits.db", pace, clock=clock)
        yield s, clock
        s.close()
    else:
        client = redis_or_skip(REDIS_URL)
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        yield RedisStore(client, prefix, pace, clock=clock), clock
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_per_second_allows_a_burst_then_reserves_short_waits_and_refuses_long_ones(store) -> None:
    s, clock = store
    keys = [("group:google", Limit(per_second=10))]
    first = [s.acquire(keys, max_wait=0.5, slot="a") for _ in range(10)]
    assert all(g.granted and g.wait == 0 for g in first)  # one second's worth at once
    queued = [s.acquire(keys, max_wait=0.5, slot="a") for _ in range(5)]
    assert [round(g.wait, 3) for g in queued] == [0.1, 0.2, 0.3, 0.4, 0.5] and all(g.granted for g in queued)
    refused = s.acquire(keys, max_wait=0.5, slot="a")
    assert not refused.granted and refused.wait == pytest.approx(0.6) and refused.key == "group:google"
    # A refusal takes no token; the next one is told to come back one interval after the first,
    # and half a second later a mail fits as if there had been no refusal.
    assert s.acquire(keys, max_wait=0.5, slot="a").wait == pytest.approx(0.7)
    clock.now += 0.5
    assert s.acquire(keys, max_wait=0.1, slot="a") == (True, pytest.approx(0.1), "")


def test_a_refusal_by_one_key_takes_nothing_from_the_others(store) -> None:
    s, clock = store
    tight, loose = ("domain:gmail.com", Limit(per_second=1)), ("group:google", Limit(per_second=100, burst=2))
    assert s.acquire([tight, loose], max_wait=0, slot="a").granted
    refused = s.acquire([tight, loose], max_wait=0, slot="a")
    assert not refused.granted and refused.key == "domain:gmail.com"
    # The loose key's burst of two is untouched by the refused request.
    assert s.acquire([loose], max_wait=0, slot="a").granted
    assert not s.acquire([loose], max_wait=0, slot="a").granted


def test_hourly_and_daily_windows_count_across_the_window_edge(store) -> None:
    s, clock = store
    clock.now = 3600 * 300  # the start of an hour
    keys = [("group:qq", Limit(per_hour=4, per_day=6))]
    assert [s.acquire(keys, max_wait=0, slot="a").granted for _ in range(5)] == [True] * 4 + [False]
    refused = s.acquire(keys, max_wait=0, slot="a")
    assert 3600 < refused.wait <= 7200  # the next hour still weighs this one's four
    clock.now += 3600 + 1800  # half-way through the next hour: 4 × 0.5 = 2 of the last hour count
    assert [s.acquire(keys, max_wait=0, slot="a").granted for _ in range(3)] == [True, True, False]
    # Six in the day: the daily limit refuses with a wait until the day's window has moved on.
    clock.now += 3600
    day = s.acquire(keys, max_wait=0, slot="a")
    assert not day.granted and day.wait > 3600 * 12


def test_in_flight_slots_are_limited_released_and_expire_when_a_process_dies(store) -> None:
    s, clock = store
    keys = [("group:yahoo", Limit(connections=2))]
    assert s.acquire(keys, max_wait=0, slot="p1-t1").granted and s.acquire(keys, max_wait=0, slot="p1-t2").granted
    full = s.acquire(keys, max_wait=0, slot="p2-t1")
    assert not full.granted and full.wait == pytest.approx(POLL)
    s.release(["group:yahoo"], "p1-t1")
    assert s.acquire(keys, max_wait=0, slot="p2-t1").granted
    # p1-t2 and p2-t1 are never released (their process was killed): after SLOT_SECONDS they are free.
    assert not s.acquire(keys, max_wait=0, slot="p3-t1").granted
    clock.now += SLOT_SECONDS + 1
    assert s.acquire(keys, max_wait=0, slot="p3-t1").granted


def test_slow_down_halves_the_pace_once_per_burst_of_signals_and_it_climbs_back(store) -> None:
    s, clock = store
    keys = [("group:microsoft", Limit(per_second=20, burst=1))]
    assert s.paces() == {}
    assert s.slow_down("group:microsoft") == 0.5
    assert s.slow_down("group:microsoft") == 0.5  # the mails in flight answer the same: no second halving
    clock.now += COOLDOWN
    assert s.slow_down("group:microsoft") == 0.25
    pace = s.paces()["group:microsoft"]
    assert pace.factor == 0.25 and pace.slowdowns == 2 and pace.since == 0
    # At a quarter of 20/s, mails are 0.2 s apart.
    assert s.acquire(keys, max_wait=1, slot="a").wait == 0
    assert s.acquire(keys, max_wait=1, slot="a").wait == pytest.approx(0.2)
    clock.now += 9.9
    assert s.paces()["group:microsoft"].factor == 0.25  # not yet a clean period
    clock.now += 0.1
    assert s.paces()["group:microsoft"].factor == pytest.approx(0.35)
    clock.now += 70
    assert s.paces()["group:microsoft"].factor == 1.0


def test_two_store_objects_on_one_file_or_server_share_the_limit(store, tmp_path) -> None:
    s, clock = store
    if isinstance(s, MemoryStore):
        pytest.skip("memory is one process's")
    other = (SqliteStore(s.path, s.pace, clock=clock) if isinstance(s, SqliteStore)
             else RedisStore(s.redis, s.prefix.removesuffix(":limits"), s.pace, clock=clock))
    keys = [("group:google", Limit(per_second=4))]
    grants = [st.acquire(keys, max_wait=0, slot="a") for _ in range(3) for st in (s, other)]
    assert [g.granted for g in grants] == [True] * 4 + [False] * 2
    # Both refusals would fit 0.25 s from now; the second, from the other process, is told to come
    # back one interval (0.25 s at 4/s) later: deferred mails return at the limit's pace.
    assert [round(g.wait, 3) for g in grants[4:]] == [0.25, 0.5]
    s.slow_down("group:google")
    assert other.paces()["group:google"].factor == 0.5
