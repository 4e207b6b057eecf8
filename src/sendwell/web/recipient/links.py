"""From a signed link to the person it names: the one check every recipient page starts with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from sendwell.db.session import transaction
from sendwell.optout.preferences import Recipient, get_recipient
from sendwell.optout.tokens import (
    SALT_CONFIRM,
    SALT_PREFERENCES,
    InvalidToken,
    TokenData,
    make_token,
    read_confirm_token,
    read_token,
)


class InvalidLink(Exception):
    """A link we did not sign, or whose contact is gone: the "invalid link" page, nothing changed."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Link:
    """A recipient page's signed token, what it says, and the contact it names."""

    token: str
    data: TokenData
    recipient: Recipient


def preferences_url(keys: list[str], data: TokenData) -> str:
    """The preference center's link for the person (and campaign) a token names."""
    return f"/p/{make_token(keys, SALT_PREFERENCES, data)}"


def read_link(keys: list[str], salt: str, token: str) -> TokenData | None:
    """The token's data, or None for a token we did not sign for this purpose."""
    try:
        if salt == SALT_CONFIRM:  # double opt-in tokens carry only the contact and expire
            return TokenData(read_confirm_token(keys, token), None, None)
        return read_token(keys, salt, token)
    except InvalidToken:
        return None


def recipient_from_token(salt: str) -> Callable[[Request, str], Link]:
    """A FastAPI dependency: the path's `token` as a Link, else the invalid-link page.

    A bad token is a 404 for a GET (a page that does not exist) and a 400 for a POST (a
    request we refuse); a good token whose contact was erased is a 404 either way.
    """

    def dependency(request: Request, token: str) -> Link:
        runtime = request.app.state.runtime
        data = read_link(runtime.settings.secret_keys, salt, token)
        if data is None:
            raise InvalidLink(404 if request.method == "GET" else 400)
        with transaction(runtime.factory) as session:
            recipient = get_recipient(session, contact_id=data.contact_id)
        if recipient is None:
            raise InvalidLink(404)
        return Link(token=token, data=data, recipient=recipient)

    return dependency
