"""Throttling: a global rate and per-destination-domain rates, as token buckets shared by threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, bursts of up to `burst`; `acquire` blocks until a token is free."""

    def __init__(self, rate: float, *, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # A burst of one second's worth keeps the average exact without a thundering start.
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; returns how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0  # may go negative: later callers queue up behind this one
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class Throttle:
    """The global limit plus one bucket per limited recipient domain (SENDWELL_DOMAIN_LIMITS)."""

    def __init__(self, *, rate: float = 0.0, domains: dict[str, float] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._global = TokenBucket(rate, clock=clock, sleep=sleep) if rate > 0 else None
        self._domains = {d.lower(): TokenBucket(r, clock=clock, sleep=sleep) for d, r in (domains or {}).items()}
        self._sleep = sleep
        self.waited = 0.0  # seconds spent waiting, for progress reports and tests

    @property
    def active(self) -> bool:
        return self._global is not None or bool(self._domains)

    def wait_for(self, rcpt: str) -> float:
        """Block until a mail to `rcpt` may go; returns the seconds waited."""
        domain = rcpt.rpartition("@")[2].lower().rstrip(".")
        waits = []
        bucket = self._domains.get(domain)
        if bucket is not None:
            waits.append(bucket.reserve())
        if self._global is not None:
            waits.append(self._global.reserve())
        wait = max(waits, default=0.0)
        if wait > 0:
            self._sleep(wait)
            self.waited += wait
        return wait
