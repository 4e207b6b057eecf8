"""The signed link of the signup confirmation mail: it names the signup and expires with it."""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

from sendwell.optout.tokens import InvalidToken

# Its own salt: a signup link cannot be replayed as any opt-out or resubscribe link.
SALT_SIGNUP = "sendwell.signup"


def make_signup_token(keys: list[str], signup_id: int) -> str:
    """A URL-safe token naming one signup, signed with the newest secret key and timestamped."""
    return URLSafeTimedSerializer(keys, salt=SALT_SIGNUP).dumps(signup_id)


def read_signup_token(keys: list[str], token: str, *, max_age: int) -> int:
    """The signup id of a valid token younger than max_age seconds; InvalidToken otherwise."""
    try:
        value = URLSafeTimedSerializer(keys, salt=SALT_SIGNUP).loads(token, max_age=max_age)
    except BadSignature as exc:  # SignatureExpired is a BadSignature
        raise InvalidToken("invalid or expired signup link") from exc
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidToken("malformed signup token")
    return value
