"""VERP return paths, `bounce+<send id>.<hmac>@domain`, that map a bounce to one send."""

from __future__ import annotations

import base64
import hashlib
import hmac

_SALT = b"sendwell.verp"


def _sig(key: str, send_id: int) -> str:
    mac = hmac.digest(key.encode(), _SALT + str(send_id).encode(), hashlib.sha256)
    # Base32 encodes each 5 bytes on their own: the first 10 characters are those of mac[:10].
    return base64.b32encode(mac[:10]).decode().lower()[:10]


def verp_detail(keys: list[str], send_id: int) -> str:
    """`<send id>.<hmac>`: the part of the return path after `bounce+`."""
    return f"{send_id}.{_sig(keys[-1], send_id)}"


def make_return_path(keys: list[str], send_id: int, domain: str) -> str:
    """The envelope sender for one send; the HMAC stops forged bounces from suppressing anyone."""
    return f"bounce+{verp_detail(keys, send_id)}@{domain}"


def read_verp(keys: list[str], detail: str) -> int | None:
    """The send id in `<send id>.<hmac>` (the part after `bounce+`), or None if forged."""
    send_part, _, sig = detail.lower().partition(".")
    if not send_part.isdigit():
        return None
    send_id = int(send_part)
    if any(hmac.compare_digest(_sig(k, send_id), sig) for k in keys):
        return send_id
    return None
