"""The deliverer's ports besides the mail transport (mail/transport.py): the DKIM signer and the throttle."""

from __future__ import annotations

from typing import Protocol


class Signer(Protocol):
    """Signs one message: returns the header lines to put in front of it (DKIM-Signature, …)."""

    def sign(self, data: bytes, /) -> bytes: ...


class Throttled(Exception):
    """A mail's provider group (or domain, or the global limit) is full for longer than a thread should wait."""

    def __init__(self, group: str, key: str, retry_after: float) -> None:
        super().__init__(f"throttled: {key} is at its limit; retry in {retry_after:.1f} s")
        self.group, self.key, self.retry_after = group, key, retry_after


class Throttle(Protocol):
    """Paces sending (delivery/throttle.py).

    `wait_for` blocks until a mail to `rcpt` may go and returns the seconds it waited (`reserve`
    takes its place without blocking and returns in how many seconds it may go), or raises
    Throttled (its `retry_after` in seconds) when the wait would be long: the mail is
    deferred. `done` reports the SMTP answer (frees the in-flight slot, slows the provider group
    down on a "slow down" deferral) and returns True when the SMTP session should be renewed.
    """

    def wait_for(self, rcpt: str) -> float: ...

    def reserve(self, rcpt: str) -> float: ...

    def done(self, rcpt: str, status: str, code: int, message: str) -> bool: ...
