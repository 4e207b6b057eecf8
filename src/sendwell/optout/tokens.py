"""Signed, never-expiring tokens that identify a contact, a campaign and a topic."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.signer import HMACAlgorithm

# One salt per purpose: a preference-center token cannot be replayed as an unsubscribe.
SALT_UNSUBSCRIBE = "sendwell.unsubscribe"
SALT_PREFERENCES = "sendwell.preferences"
SALT_KEEP = "sendwell.keep"  # the reconfirmation mail's "keep me subscribed" (docs/hygiene.md)
_MAILTO_SALT = b"sendwell.mailto"
_MAILTO_SIG_LEN = 16


class InvalidToken(ValueError):
    """The token is forged, truncated, signed with an unknown key, or malformed."""


@dataclass(frozen=True)
class TokenData:
    contact_id: int
    campaign_id: int | None
    topic_id: int | None


@lru_cache(maxsize=32)
def _serializer(keys: tuple[str, ...], purpose: str) -> URLSafeSerializer:
    # itsdangerous takes a list of keys, newest last: it signs with the newest and
    # verifies against all, which is exactly SENDWELL_SECRET_KEY's rotation contract.
    return URLSafeSerializer(list(keys), salt=purpose)


@lru_cache(maxsize=32)
def _signing(keys: tuple[str, ...], purpose: str) -> tuple[bytes, bytes, Any]:
    """(derived key, separator, digest) of the serializer's signer, for its newest key.

    `Signer.sign` derives the key again and builds a Python-level HMAC object on every call
    (~20 µs, twice per mail); the key is derived once here and the one-shot C HMAC used.
    """
    signer = _serializer(keys, purpose).make_signer()
    if not isinstance(signer.algorithm, HMACAlgorithm):  # pragma: no cover - not our configuration
        raise TypeError("tokens are signed with HMAC")
    return signer.derive_key(), signer.sep, signer.algorithm.digest_method


def make_token(keys: list[str], purpose: str, data: TokenData) -> str:
    """A URL-safe token; no timestamp, so it never expires (COMPLIANCE rule 11).

    Byte for byte what `URLSafeSerializer.dumps` makes, without its generic JSON machinery:
    three integers are written directly, compressed only when that is shorter (its rule),
    and signed as the serializer's own signer signs (HMAC over its derived key). Each mail
    carries two or three tokens; tests/optout/test_tokens.py holds the two equal.
    """
    payload = f"[{int(data.contact_id)},{int(data.campaign_id or 0)},{int(data.topic_id or 0)}]".encode()
    compressed = zlib.compress(payload)
    encoded = b"." + base64_encode(compressed) if len(compressed) < len(payload) - 1 else base64_encode(payload)
    key, sep, digest = _signing(tuple(keys), purpose)
    return (encoded + sep + base64_encode(hmac.digest(key, encoded, digest))).decode("ascii")


def read_token(keys: list[str], purpose: str, token: str) -> TokenData:
    """Verify and decode a token; InvalidToken on any problem."""
    serializer = _serializer(tuple(keys), purpose)
    try:
        value = serializer.loads(token)
    except BadSignature as exc:
        raise InvalidToken("invalid or tampered token") from exc
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        or value[0] == 0
    ):
        raise InvalidToken("malformed token")
    return TokenData(value[0], value[1] or None, value[2] or None)


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
        if not number:
            return out


def _mailto_sig(key: str, body: str) -> str:
    mac = hmac.digest(key.encode(), _MAILTO_SALT + body.encode(), hashlib.sha256)
    # Base32 encodes each 5 bytes on their own: 16 characters are those of the first 10 bytes.
    return base64.b32encode(mac[:10]).decode().lower()[:_MAILTO_SIG_LEN]


def make_mailto_token(keys: list[str], contact_id: int, campaign_id: int | None) -> str:
    """A short lower-case token for `unsubscribe+<token>@domain`.

    Local parts are at most 64 octets (RFC 5321 §4.5.3.1.1) and some MTAs fold case, so the
    itsdangerous token would not survive: base36 ids and an 80-bit base32 HMAC do.
    """
    body = f"{_b36(contact_id)}-{_b36(campaign_id or 0)}"
    return f"{body}-{_mailto_sig(keys[-1], body)}"


def read_mailto_token(keys: list[str], token: str) -> TokenData:
    """Verify a mailto token against every key; InvalidToken otherwise."""
    parts = token.lower().split("-")
    if len(parts) != 3:
        raise InvalidToken("malformed mailto token")
    body = f"{parts[0]}-{parts[1]}"
    if not any(hmac.compare_digest(_mailto_sig(k, body), parts[2]) for k in keys):
        raise InvalidToken("invalid mailto token")
    try:
        contact_id, campaign_id = int(parts[0], 36), int(parts[1], 36)
    except ValueError as exc:
        raise InvalidToken("malformed mailto token") from exc
    return TokenData(contact_id, campaign_id or None, None)


SALT_CONFIRM = "sendwell.confirm"
CONFIRM_MAX_AGE = 7 * 24 * 3600  # a double opt-in link is a fresh consent: it should be fresh too


def make_confirm_token(keys: list[str], contact_id: int) -> str:
    """A double opt-in token; unlike the opt-out links it carries a time and expires in 7 days."""
    return URLSafeTimedSerializer(keys, salt=SALT_CONFIRM).dumps(contact_id)


def read_confirm_token(keys: list[str], token: str, max_age: int = CONFIRM_MAX_AGE) -> int:
    """The contact id of a valid, unexpired double opt-in token; InvalidToken otherwise."""
    return read_timed_id(keys, token, salt=SALT_CONFIRM, max_age=max_age, link="confirmation")


def read_timed_id(keys: list[str], token: str, *, salt: str, max_age: int, link: str) -> int:
    """The positive id a timed token of this salt carries, if it is younger than max_age seconds;
    InvalidToken naming the `link` ("confirmation", "signup") otherwise."""
    try:
        value = URLSafeTimedSerializer(keys, salt=salt).loads(token, max_age=max_age)
    except BadSignature as exc:  # SignatureExpired is a BadSignature
        raise InvalidToken(f"invalid or expired {link} link") from exc
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidToken(f"malformed {link} token")
    return value
