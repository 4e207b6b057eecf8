"""Limits shared by every delivery process: one port, a Redis store, a SQLite store for one machine, and memory.

A key ("group:google", "domain:gmail.com", "global") has a `Limit`; `acquire` asks for one mail
under several keys at once and either grants it (after a wait of at most `max_wait`, already
reserved: the caller sleeps and sends) or refuses it and says how long until it would fit (the
caller defers the mail). Per key:

- mails per second: GCRA (the generic cell rate algorithm, a token bucket kept as one number, the
  "theoretical arrival time"), with a burst allowance;
- mails per minute / hour / day: a sliding-window counter (this window's count plus the last
  window's, weighted by how much of it is still inside the window);
- SMTP sessions sending to the key at once: slots with an expiry, so a process that dies holding one
  never leaks it;
- the adaptive pace (AIMD): `slow_down` halves the key's rate (at most once per COOLDOWN, since the
  mails already in flight get the same answer), and each clean `recover` period after the last
  slow-down signal adds `step` of the full rate back. Kept as (factor, last signal) and worked out
  on read, so no process has to be alive to raise it again.

Why by hand: the `limits` library has moving/sliding windows on Redis but no reservation (how long
to wait for a mail rather than yes/no), no SQLite storage for the embedded shape, no concurrency
slots and no pace. The Redis store runs the same algorithm as one Lua script, atomic across
machines, on Redis's clock; the SQLite store runs it in a BEGIN IMMEDIATE transaction on a file
in the data folder, atomic across the processes of one machine (a SQLite file rather than a
plain file lock: the state must be read and written together, and WAL makes that ~0.1 ms);
tests/delivery/test_limiter.py runs the same cases on all three.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

WINDOWS = ((60, "per_minute"), (3600, "per_hour"), (86400, "per_day"))
POLL = 0.05  # seconds between tries while every in-flight slot of a key is taken
COOLDOWN = 2.0  # seconds: slow-down signals this soon after a halving do not halve again
SLOT_SECONDS = 300.0  # an in-flight slot not released (its process died) frees itself after this
STATE_SECONDS = 2 * 86400  # idle state is dropped (Redis) after the longest window and a margin


@dataclass(frozen=True)
class Limit:
    """One key's limits; 0 = no limit of that kind."""

    per_second: float = 0.0
    burst: float = 0.0  # mails at once before the per-second pace applies; 0 = one second's worth
    per_minute: float = 0.0
    per_hour: float = 0.0
    per_day: float = 0.0
    connections: int = 0  # SMTP sessions sending under this key at once
    per_connection: int = 0  # mails per SMTP session (applied by the deliverer, not the store)

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> Limit:
        return cls(**{k: (int(v) if k in ("connections", "per_connection") else float(v)) for k, v in values.items()})

    @property
    def active(self) -> bool:
        return any((self.per_second, self.per_minute, self.per_hour, self.per_day, self.connections))

    def describe(self) -> str:
        parts = [f"{self.per_second:g}/s"] if self.per_second else []
        parts += [f"{getattr(self, field):g}/{field[4]}" for _, field in WINDOWS if getattr(self, field)]
        parts += [f"conn={self.connections}"] if self.connections else []
        parts += [f"per_conn={self.per_connection}"] if self.per_connection else []
        return ";".join(parts) or "off"


@dataclass(frozen=True)
class Pace:
    """The adaptive pace: halve on a slow-down signal, add `step` back per clean `recover` seconds."""

    recover: float = 10.0
    step: float = 0.1
    floor: float = 1 / 16


class StoreUnavailable(RuntimeError):
    """The limit store cannot be read (Redis down, the SQLite file unreadable)."""


class Grant(NamedTuple):
    granted: bool
    wait: float  # granted: sleep this long, then send; refused: how long until it might fit
    key: str = ""  # refused: the key that said no


class PaceState(NamedTuple):
    factor: float  # share of the full rate now allowed, 1/16 … 1
    slowdowns: int  # halvings so far (since the state was made)
    since: float | None  # seconds since the last slow-down signal, None if there was none


class LimitStore(Protocol):
    """The port: Redis (scale-out), SQLite (one machine), memory (one process, tests)."""

    def acquire(self, keys: Sequence[tuple[str, Limit]], *, max_wait: float, slot: str) -> Grant: ...

    def release(self, keys: Sequence[str], slot: str) -> None: ...

    def slow_down(self, key: str) -> float: ...

    def paces(self) -> dict[str, PaceState]: ...


# ---- the algorithm on a state dict (memory and SQLite stores) ---------------------------------

def _factor(state: dict[str, float], now: float, pace: Pace) -> float:
    if "f0" not in state:
        return 1.0
    steps = max(0, math.floor((now - state["sig"]) / pace.recover))
    return min(1.0, state["f0"] + pace.step * steps)


def _plan(state: dict[str, float], limit: Limit, now: float, pace: Pace) -> tuple[float, dict[str, float]]:
    """(seconds to wait for this key, the state after granting one mail)."""
    new = dict(state)
    wait = 0.0
    factor = _factor(state, now, pace)
    if limit.per_second:
        interval = 1.0 / (limit.per_second * factor)
        burst = max(1.0, (limit.burst or max(1.0, limit.per_second)) * factor)
        tat = max(state.get("tat", now), now) + interval
        wait = max(wait, tat - burst * interval - now)
        new["tat"] = tat
    for period, field in WINDOWS:
        n = getattr(limit, field)
        if not n:
            continue
        start = math.floor(now / period) * period
        s0 = state.get(f"s{period}", start)
        cur, prev = state.get(f"c{period}", 0.0), state.get(f"q{period}", 0.0)
        if s0 != start:
            prev, cur = (cur if s0 == start - period else 0.0), 0.0
        elapsed = (now - start) / period
        if prev * (1 - elapsed) + cur + 1 > n:
            if cur + 1 <= n and prev > 0:
                wait = max(wait, start + period * (1 - (n - cur - 1) / prev) - now)
            else:
                wait = max(wait, start + period + period * max(0.0, 1 - (n - 1) / max(cur, 1.0)) - now)
        new.update({f"s{period}": start, f"c{period}": cur + 1, f"q{period}": prev})
    return max(wait, 0.0), new


def _acquire(states: dict[str, dict[str, float]], slots: dict[str, dict[str, float]],
             keys: Sequence[tuple[str, Limit]], now: float, max_wait: float, slot: str,
             pace: Pace) -> tuple[Grant, dict[str, dict[str, float]]]:
    """The grant, and the new states to store when it is granted."""
    wait, blocker, busy = 0.0, "", False
    new_states = {}
    for key, limit in keys:
        w, new_states[key] = _plan(states.get(key, {}), limit, now, pace)
        if w > wait:
            wait, blocker = w, key
        if limit.connections:
            live = {s: e for s, e in slots.get(key, {}).items() if e > now}
            slots[key] = live
            if slot not in live and len(live) >= limit.connections:
                busy, blocker = True, blocker or key
    if busy:
        return Grant(False, max(wait, POLL), blocker), {}
    if wait > max_wait:
        # Refused: when to come back. Refusals queue on a horizon the key keeps, one interval
        # apart, so the deferred mails of every worker come back at the key's pace instead of
        # all at one moment (to be refused again).
        state = dict(states.get(blocker, {}))
        back = max(state.get("bk", 0.0), now + wait)
        state["bk"] = back + _interval(dict(keys)[blocker], _factor(state, now, pace))
        return Grant(False, back - now, blocker), {blocker: state}
    for key, limit in keys:
        if limit.connections:
            slots[key][slot] = now + SLOT_SECONDS
    return Grant(True, wait), new_states


def _interval(limit: Limit, factor: float) -> float:
    """Seconds between two mails under `limit` at the current pace (its tightest rate)."""
    if limit.per_second:
        return 1.0 / (limit.per_second * factor)
    spans = [period / getattr(limit, field) for period, field in WINDOWS if getattr(limit, field)]
    return min(spans) if spans else POLL


def _slow_down(state: dict[str, float], now: float, pace: Pace) -> dict[str, float]:
    factor = _factor(state, now, pace)
    new = dict(state, f0=factor, sig=now)
    if "t0" not in state or now - state["t0"] >= COOLDOWN:
        new.update(f0=max(pace.floor, factor / 2), t0=now, slow=state.get("slow", 0) + 1)
    return new


def _pace_state(state: dict[str, float], now: float, pace: Pace) -> PaceState:
    since = now - state["sig"] if "sig" in state else None
    return PaceState(_factor(state, now, pace), int(state.get("slow", 0)), since)


class MemoryStore:
    """One process only (a single worker, tests): the algorithm on dicts, on an injectable clock."""

    def __init__(self, pace: Pace = Pace(), clock: Callable[[], float] = time.monotonic) -> None:
        self.pace, self.clock = pace, clock
        self._states: dict[str, dict[str, float]] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, keys: Sequence[tuple[str, Limit]], *, max_wait: float, slot: str) -> Grant:
        with self._lock:
            grant, new = _acquire(self._states, self._slots, keys, self.clock(), max_wait, slot, self.pace)
            self._states.update(new)
            return grant

    def release(self, keys: Sequence[str], slot: str) -> None:
        with self._lock:
            for key in keys:
                self._slots.get(key, {}).pop(slot, None)

    def slow_down(self, key: str) -> float:
        with self._lock:
            now = self.clock()
            self._states[key] = _slow_down(self._states.get(key, {}), now, self.pace)
            return _factor(self._states[key], now, self.pace)

    def paces(self) -> dict[str, PaceState]:
        with self._lock:
            now = self.clock()
            return {k: _pace_state(s, now, self.pace) for k, s in self._states.items() if "f0" in s}


class SqliteStore:
    """Every process of one machine (the embedded shape): the state in a SQLite file in the data folder."""

    def __init__(self, path: Path, pace: Pace = Pace(), clock: Callable[[], float] = time.time) -> None:
        self.path, self.pace, self.clock = path, pace, clock
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._begin() as db:
            db.execute("CREATE TABLE IF NOT EXISTS limiter (key TEXT PRIMARY KEY, state TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS slots (key TEXT, slot TEXT, expires REAL, PRIMARY KEY (key, slot))")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync per commit; a power cut loses a pace step at most
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
            return self.db

        def __exit__(self, kind: Any, *_: Any) -> None:
            self.db.execute("ROLLBACK" if kind else "COMMIT")

    def _begin(self) -> SqliteStore._Tx:
        return self._Tx(self._db())

    def _states(self, db: sqlite3.Connection, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        marks = ",".join("?" * len(keys))
        return {k: json.loads(s) for k, s in db.execute(f"SELECT key, state FROM limiter WHERE key IN ({marks})", keys)}

    def _save(self, db: sqlite3.Connection, states: dict[str, dict[str, float]]) -> None:
        db.executemany("INSERT INTO limiter (key, state) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                       [(k, json.dumps(s)) for k, s in states.items()])

    def acquire(self, keys: Sequence[tuple[str, Limit]], *, max_wait: float, slot: str) -> Grant:
        names = [k for k, _ in keys]
        with self._begin() as db:
            now = self.clock()
            slots: dict[str, dict[str, float]] = {}
            counted = [k for k, limit in keys if limit.connections]
            if counted:
                db.execute("DELETE FROM slots WHERE expires <= ?", (now,))
                marks = ",".join("?" * len(counted))
                for key, s, expires in db.execute(f"SELECT key, slot, expires FROM slots WHERE key IN ({marks})", counted):
                    slots.setdefault(key, {})[s] = expires
            grant, new = _acquire(self._states(db, names), slots, keys, now, max_wait, slot, self.pace)
            self._save(db, new)
            if grant.granted:
                db.executemany("INSERT OR REPLACE INTO slots (key, slot, expires) VALUES (?, ?, ?)",
                               [(k, slot, now + SLOT_SECONDS) for k in counted])
            return grant

    def release(self, keys: Sequence[str], slot: str) -> None:
        with self._begin() as db:
            db.executemany("DELETE FROM slots WHERE key = ? AND slot = ?", [(k, slot) for k in keys])

    def slow_down(self, key: str) -> float:
        with self._begin() as db:
            now = self.clock()
            state = _slow_down(self._states(db, [key]).get(key, {}), now, self.pace)
            self._save(db, {key: state})
            return _factor(state, now, self.pace)

    def paces(self) -> dict[str, PaceState]:
        now = self.clock()
        try:
            rows = self._db().execute("SELECT key, state FROM limiter").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{self.path}: {exc}") from exc
        states = {k: json.loads(s) for k, s in rows}
        return {k: _pace_state(s, now, self.pace) for k, s in states.items() if "f0" in s}

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


# ---- Redis: the same algorithm as one Lua script --------------------------------------------

_ACQUIRE = """
local now = tonumber(ARGV[1])
if not now then local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local max_wait, slot, slot_ttl = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local recover, step, keep, registry = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local periods = {60, 3600, 86400}
local wait, busy, blocker, bi = 0, false, '', 0
local plans = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 8 + (i - 1) * 6
  local per_s, burst, conns = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 6])
  local st = redis.call('HMGET', h, 'tat', 'f0', 'sig', 's60', 'c60', 'q60', 's3600', 'c3600', 'q3600',
                        's86400', 'c86400', 'q86400')
  local f = 1
  if st[2] then f = math.min(1, tonumber(st[2]) + step * math.max(0, math.floor((now - tonumber(st[3])) / recover))) end
  local plan = {h = h, z = z, conns = conns, set = {}, interval = 0.05}
  local w = 0
  if per_s > 0 then
    plan.interval = 1 / (per_s * f)
    local interval = 1 / (per_s * f)
    local b = math.max(1, burst * f)
    local tat = math.max(tonumber(st[1]) or now, now) + interval
    w = math.max(w, tat - b * interval - now)
    table.insert(plan.set, 'tat'); table.insert(plan.set, tostring(tat))
  end
  for j = 1, 3 do
    local n = tonumber(ARGV[a + 2 + j])
    if n > 0 then
      local p = periods[j]
      if per_s <= 0 and (plan.interval == 0.05 or p / n < plan.interval) then plan.interval = p / n end
      local start = math.floor(now / p) * p
      local s0 = tonumber(st[4 + (j - 1) * 3]) or start
      local cur = tonumber(st[5 + (j - 1) * 3]) or 0
      local prev = tonumber(st[6 + (j - 1) * 3]) or 0
      if s0 ~= start then
        if s0 == start - p then prev = cur else prev = 0 end
        cur = 0
      end
      local e = (now - start) / p
      if prev * (1 - e) + cur + 1 > n then
        if cur + 1 <= n and prev > 0 then w = math.max(w, start + p * (1 - (n - cur - 1) / prev) - now)
        else w = math.max(w, start + p + p * math.max(0, 1 - (n - 1) / math.max(cur, 1)) - now) end
      end
      for _, kv in ipairs({{'s' .. p, start}, {'c' .. p, cur + 1}, {'q' .. p, prev}}) do
        table.insert(plan.set, kv[1]); table.insert(plan.set, tostring(kv[2]))
      end
    end
  end
  if w > wait then wait = w; blocker = h; bi = i end
  if conns > 0 then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    if not redis.call('ZSCORE', z, slot) and redis.call('ZCARD', z) >= conns then
      busy = true
      if blocker == '' then blocker = h end
    end
  end
  plans[i] = plan
end
if busy then return {0, tostring(math.max(wait, tonumber(ARGV[9 + #KEYS * 3]) or 0.05)), blocker} end
if wait > max_wait then
  -- Refusals queue on a horizon one interval apart: deferred mails come back at the key's pace.
  local p = plans[bi]
  local back = math.max(tonumber(redis.call('HGET', p.h, 'bk')) or 0, now + wait)
  redis.call('HSET', p.h, 'bk', tostring(back + p.interval))
  redis.call('EXPIRE', p.h, keep)
  return {0, tostring(back - now), blocker}
end
for _, plan in ipairs(plans) do
  if #plan.set > 0 then
    redis.call('HSET', plan.h, unpack(plan.set))
    redis.call('EXPIRE', plan.h, keep)
    redis.call('SADD', registry, plan.h)
  end
  if plan.conns > 0 then
    redis.call('ZADD', plan.z, now + slot_ttl, slot)
    redis.call('EXPIRE', plan.z, math.ceil(slot_ttl) + 60)
  end
end
return {1, tostring(math.max(wait, 0)), ''}
"""

_SLOW_DOWN = """
local now = tonumber(ARGV[1])
if not now then local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local recover, step, floor, cooldown, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
                                            tonumber(ARGV[5]), tonumber(ARGV[6])
local st = redis.call('HMGET', KEYS[1], 'f0', 'sig', 't0', 'slow')
local f = 1
if st[1] then f = math.min(1, tonumber(st[1]) + step * math.max(0, math.floor((now - tonumber(st[2])) / recover))) end
if st[3] and now - tonumber(st[3]) < cooldown then
  redis.call('HSET', KEYS[1], 'f0', tostring(f), 'sig', tostring(now))
else
  f = math.max(floor, f / 2)
  redis.call('HSET', KEYS[1], 'f0', tostring(f), 'sig', tostring(now), 't0', tostring(now),
             'slow', tostring((tonumber(st[4]) or 0) + 1))
end
redis.call('EXPIRE', KEYS[1], keep)
redis.call('SADD', KEYS[2], KEYS[1])
return tostring(f)
"""


class RedisStore:
    """Every process on every machine (the scale-out shape): the state on Redis, on Redis's clock."""

    def __init__(self, client: Any, prefix: str = "sendwell", pace: Pace = Pace(),
                 clock: Callable[[], float] | None = None) -> None:
        self.redis, self.prefix, self.pace, self.clock = client, f"{prefix}:limits", pace, clock
        self._acquire = client.register_script(_ACQUIRE)
        self._slow = client.register_script(_SLOW_DOWN)
        self._registry = f"{self.prefix}:keys"

    @classmethod
    def from_url(cls, url: str, prefix: str = "sendwell", pace: Pace = Pace()) -> RedisStore:
        import redis  # the scale-out shape only; the embedded shape does not need a Redis client

        return cls(redis.Redis.from_url(url), prefix, pace)

    def _now(self) -> str:
        return "" if self.clock is None else repr(self.clock())  # "": the script asks Redis for the time

    def _h(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def acquire(self, keys: Sequence[tuple[str, Limit]], *, max_wait: float, slot: str) -> Grant:
        redis_keys: list[str] = []
        args: list[Any] = [self._now(), max_wait, slot, SLOT_SECONDS, self.pace.recover, self.pace.step,
                           STATE_SECONDS, self._registry]
        for key, limit in keys:
            redis_keys += [self._h(key), self._h(key) + ":slots"]
            args += [limit.per_second, limit.burst or max(1.0, limit.per_second), limit.per_minute, limit.per_hour,
                     limit.per_day, limit.connections]
        args.append(POLL)
        granted, wait, blocker = self._acquire(keys=redis_keys, args=args)
        blocker = blocker.decode() if isinstance(blocker, bytes) else blocker
        return Grant(bool(granted), float(wait), blocker.removeprefix(self.prefix + ":"))

    def release(self, keys: Sequence[str], slot: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zrem(self._h(key) + ":slots", slot)
        pipe.execute()

    def slow_down(self, key: str) -> float:
        p = self.pace
        return float(self._slow(keys=[self._h(key), self._registry],
                                args=[self._now(), p.recover, p.step, p.floor, COOLDOWN, STATE_SECONDS]))

    def paces(self) -> dict[str, PaceState]:
        import redis

        try:
            names = sorted(n.decode() if isinstance(n, bytes) else n for n in self.redis.smembers(self._registry))
            return self._read_paces(names) if names else {}
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    def _read_paces(self, names: list[str]) -> dict[str, PaceState]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        for name in names:
            pipe.hmget(name, "f0", "sig", "t0", "slow")
        first, *rows = pipe.execute()
        now = float(self.clock()) if self.clock is not None else first[0] + first[1] / 1e6
        out = {}
        for name, row in zip(names, rows):
            if row[0] is None:
                continue
            state = {"f0": float(row[0]), "sig": float(row[1]), "slow": float(row[3] or 0)}
            out[name.removeprefix(self.prefix + ":")] = _pace_state(state, now, self.pace)
        return out
