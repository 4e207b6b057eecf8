"""The signed link of the signup confirmation mail: it names the signup and expires with it."""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer

from sendwell.optout.tokens import read_timed_id

# Its own salt: a signup link cannot be replayed as any opt-out or resubscribe link.
SALT_SIGNUP = "sendwell.signup"


def make_signup_token(keys: list[str], signup_id: int) -> str:
    """A URL-safe token naming one signup, signed with the newest secret key and timestamped."""
    return URLSafeTimedSerializer(keys, salt=SALT_SIGNUP).dumps(signup_id)


def read_signup_token(keys: list[str], token: str, *, max_age: int) -> int:
    """The signup id of a valid token younger than max_age seconds; InvalidToken otherwise."""
    return read_timed_id(keys, token, salt=SALT_SIGNUP, max_age=max_age, link="signup")
