"""Throttling shared by every worker: limits per provider group, per recipient domain and overall, with an adaptive pace.

Before each mail the deliverer asks `Throttle.reserve(rcpt)`: the recipient's provider group
(delivery/providers.py) and domain give the keys, and the limit store (delivery/limiter.py: Redis
in the scale-out shape, a SQLite file in the data folder in the embedded one) grants the mail at
once, a moment ahead (at most SENDWELL_PROVIDER_MAX_WAIT seconds, reserved: the deliverer sends
other mail meanwhile and this one at its moment), or refuses it: then `Throttled` says when it
would fit, and the deliverer defers the mail (state deferred, reason `throttled`, retry_at) and
goes on with the batch, so a group at its limit never holds up mail to other groups. After the SMTP transaction `done` frees the in-flight slot and feeds the answer
back: a deferral that means "slow down" halves the group's pace (`asks_to_slow_down`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings, parse_domain_limits, parse_provider_limits
from sendwell.delivery.instruments import throttle_counters
from sendwell.delivery.limiter import Limit, LimitStore, Pace, RedisStore, SqliteStore, StoreUnavailable
from sendwell.delivery.ports import Throttled
from sendwell.delivery.providers import OTHER, ProviderGroups

log = logging.getLogger(__name__)

# Limits per provider group when SENDWELL_PROVIDER_LIMITS does not name the group. No provider
# publishes a per-second figure for inbound mail; these are conservative choices, low enough that a
# warmed-up sender's campaign is rarely deferred, and the adaptive pace halves them on the first
# "slow down" answer. conn=20 is Postfix's default_destination_concurrency_limit (postconf(5)).
# Google: bulk sender guidelines ask for a steady rate without bursts and answer 421 4.7.28 when
# it is too high. Yahoo answers 421 4.7.0 [TSS04] and asks senders to slow down; Tencent (QQ) and
# NetEase are known for deferring bulk mail, hence the lower figures.
DEFAULT_LIMITS: dict[str, str] = {
    "google": "20/s;conn=20",
    "microsoft": "20/s;conn=20",
    "yahoo": "10/s;conn=10",
    "apple": "10/s;conn=10",
    "qq": "5/s;conn=5",
    "netease": "5/s;conn=5",
    "alibaba": "10/s;conn=10",
    "zoho": "10/s;conn=10",
    "yandex": "10/s;conn=10",
    "mailru": "10/s;conn=10",
    "gmx": "10/s;conn=10",
    "orange": "5/s;conn=5",
    "proton": "10/s;conn=10",
}

# Deferrals that mean "you send too fast" rather than "this mailbox has a problem": 421 (the
# server closes the session), the enhanced codes 4.7.0 (Yahoo TSS04, Microsoft, QQ) and 4.7.28
# (Gmail "unusual rate"), the providers' rate-limit wording, and a refused connection.
_SLOW_WORDS = re.compile(
    r"\b4\.7\.(?:0|28)\b|rate.?limit|too many (?:messages|connections|mails)|try again later|throttl|"
    r"temporarily (?:deferred|rate)|unusual rate|sending rate|slow down|\bTSS0\d|connection refused|"
    r"refused to talk|exceeded", re.I)


def asks_to_slow_down(code: int, message: str) -> bool:
    """Whether a temporary answer (or a connection error, code 0) asks the sender to send slower."""
    return code == 421 or ((code == 0 or 400 <= code < 500) and _SLOW_WORDS.search(message) is not None)


def provider_limits(settings: Settings) -> dict[str, Limit]:
    """Each group's limit: the defaults, with SENDWELL_PROVIDER_LIMITS's groups replacing theirs."""
    merged = {name: parse_provider_limits(f"{name}={spec}")[name] for name, spec in DEFAULT_LIMITS.items()}
    merged.update(parse_provider_limits(settings.provider_limits))
    return {name: Limit.from_dict(values) for name, values in merged.items()}


def make_store(settings: Settings) -> LimitStore:
    """Redis when the queue is on Redis (every machine shares it), else a SQLite file in the data folder."""
    pace = Pace(recover=settings.provider_recover_seconds)
    if settings.queue_url.startswith(("redis://", "rediss://")):
        return RedisStore.from_url(settings.queue_url, settings.queue_name, pace)
    return SqliteStore(settings.data_dir / "limits.db", pace)


@dataclass
class Throttle:
    """The limits of one installation, shared by a process's deliverers (threads) and, through `store`, every process."""

    store: LimitStore
    groups: ProviderGroups | None = None
    limits: dict[str, Limit] = field(default_factory=dict)  # by provider group
    domains: dict[str, float] = field(default_factory=dict)  # SENDWELL_DOMAIN_LIMITS, mails/s per domain
    rate: float = 0.0  # SENDWELL_RATE_LIMIT, mails/s over all
    max_wait: float = 2.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    waited: float = 0.0  # seconds spent waiting, for tests and progress
    slowdowns: int = 0  # slow-down answers seen by this process
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, factory: sessionmaker[Session] | None = None) -> Throttle:
        return cls(make_store(settings), ProviderGroups.from_settings(settings, factory), provider_limits(settings),
                   parse_domain_limits(settings.domain_limits), settings.rate_limit, settings.provider_max_wait)

    def group_of(self, rcpt: str) -> tuple[str, str]:
        domain = rcpt.rpartition("@")[2].lower().rstrip(".")
        return domain, (self.groups.group_for(domain) if self.groups is not None else OTHER)

    def keys(self, domain: str, group: str) -> list[tuple[str, Limit]]:
        keys = []
        limit = self.limits.get(group)
        if limit is not None and limit.active:
            keys.append((f"group:{group}", limit))
        if domain in self.domains:
            keys.append((f"domain:{domain}", Limit(per_second=self.domains[domain])))
        if self.rate > 0:
            keys.append(("global", Limit(per_second=self.rate)))
        return keys

    def _slot(self) -> str:
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        return slot

    def wait_for(self, rcpt: str) -> float:
        """Block until a mail to `rcpt` may go (a short wait at most); returns the seconds waited.

        Raises Throttled when it would have to wait longer than `max_wait`: defer the mail.
        """
        wait = self.reserve(rcpt)
        if wait > 0:
            self.sleep(wait)
            self._waited(wait)
        return wait

    def reserve(self, rcpt: str) -> float:
        """Take a mail to `rcpt`'s place under its limits; returns in how many seconds it may go (≤ max_wait).

        Raises Throttled when that would be longer than `max_wait`: defer the mail. The deliverer
        sends other mail meanwhile and this one at its moment (Deliverer.deliver).
        """
        domain, group = self.group_of(rcpt)
        keys = self.keys(domain, group)
        if not keys:
            return 0.0
        # One in-flight slot per thread (its SMTP session), held while it has mail of the group
        # reserved or in flight (`done` counts them down), or until the slot expires.
        slot = self._slot()
        deadline = self.clock() + self.max_wait
        waited = 0.0
        while True:
            grant = self.store.acquire(keys, max_wait=max(0.0, deadline - self.clock()), slot=slot)
            if grant.granted or self.clock() + grant.wait > deadline:
                break
            self.sleep(grant.wait)  # every in-flight slot is taken: try again shortly
            waited += grant.wait
        if not grant.granted:
            self._waited(waited)
            throttle_counters()[1].labels(group).inc()
            raise Throttled(group, grant.key, grant.wait)  # the store spaces refusals out (limiter.py)
        held = tuple(k for k, limit in keys if limit.connections)
        if held:
            counts = self._local.__dict__.setdefault("held", {})
            counts[held] = counts.get(held, 0) + 1
        self._waited(waited)  # polling for an in-flight slot
        return grant.wait

    def _waited(self, seconds: float) -> None:
        if seconds > 0:
            self.waited += seconds
            throttle_counters()[0].inc(seconds)

    def done(self, rcpt: str, status: str, code: int, message: str) -> bool:
        """After the SMTP transaction: free the in-flight slot, and slow the group down when asked to.

        Returns True when this thread's SMTP session has carried its group's `per_conn` mails:
        the deliverer closes it, and the next mail opens a new one.
        """
        domain, group = self.group_of(rcpt)
        counts = self._local.__dict__.get("held", {})
        held = tuple(k for k, limit in self.keys(domain, group) if limit.connections)
        if held in counts:
            counts[held] -= 1
            if counts[held] <= 0:
                del counts[held]
                self.store.release(list(held), self._slot())
        limit = self.limits.get(group)
        if status == "temporary" and asks_to_slow_down(code, message):
            if limit is not None and limit.per_second:
                factor = self.store.slow_down(f"group:{group}")
                self.slowdowns += 1
                log.warning("provider group %s asked to slow down (%s %s): pace now %.0f%% of %g/s",
                            group, code, message[:120], factor * 100, limit.per_second)
        if limit is None or not limit.per_connection or status == "skip":
            return False
        counts = self._local.__dict__.setdefault("session", {})
        counts[group] = counts.get(group, 0) + 1
        if counts[group] < limit.per_connection:
            return False
        counts.clear()
        return True

    def paces(self) -> list[dict[str, Any]]:
        """Each limited group's limit and current pace, for `campaigns status`, the admin and /metrics.

        Raises StoreUnavailable when the limit store cannot be read.
        """
        try:
            stored = self.store.paces()
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(str(exc)) from exc
        rows = []
        for group, limit in sorted(self.limits.items()):
            if not limit.active:
                continue
            state = stored.get(f"group:{group}")
            factor = state.factor if state else 1.0
            rows.append({
                "group": group, "limit": limit.describe(), "factor": round(factor, 4),
                "per_second": round(limit.per_second * factor, 2) if limit.per_second else None,
                "slowdowns": state.slowdowns if state else 0,
                "last_slowdown_seconds_ago": round(state.since, 1) if state and state.since is not None else None,
            })
        return rows
