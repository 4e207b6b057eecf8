"""The deliverer's ports besides the mail transport (mail/transport.py): the DKIM signer and the throttle."""

from __future__ import annotations

from typing import Protocol


class Signer(Protocol):
    """Signs one message: returns the header lines to put in front of it (DKIM-Signature, …)."""

    def sign(self, data: bytes, /) -> bytes: ...


class Throttle(Protocol):
    """Paces sending: blocks until a mail to `rcpt` may go, and returns the seconds it waited."""

    def wait_for(self, rcpt: str) -> float: ...
