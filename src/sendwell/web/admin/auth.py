"""The admin's session cookie, CSRF token and role checks.

The session is a signed (itsdangerous, SENDWELL_SECRET_KEY, newest key signs, older keys
still verify) cookie holding the user id, a CSRF token, a fingerprint of the password
hash (changing the password or disabling the user ends every session at once) and the id
of a server-side session record (sendwell.access.sessions): logout revokes the record, so a
copy of the cookie is refused afterwards. The role is
read from the database on each request, so a demotion takes effect immediately.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from sendwell.db.models import AdminUser

COOKIE = "sendwell_admin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_AGE = 12 * 3600  # a working day; then sign in again
RANK = {"viewer": 0, "marketer": 1, "admin": 2}


class NotSignedIn(Exception):
    """No valid session: the view answers with a redirect to the sign-in page."""


class Forbidden(Exception):
    """Signed in, but the role does not allow this, or the CSRF token is missing or wrong."""

    def __init__(self, message: str, **params: object) -> None:
        # `message` is a template with %(name)s placeholders, so the page can show it translated.
        super().__init__(message % params if params else message)
        self.message = message % params if params else message
        self.template = message
        self.params = params


@dataclass
class AdminSession:
    csrf: str
    user_id: int | None = None
    fingerprint: str = ""
    session_id: str = ""  # the server-side record (admin_sessions); empty before sign-in


def fingerprint(user: AdminUser) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


class SessionCodec:
    """Reads and writes the session cookie."""

    def __init__(self, secret_keys: list[str], *, secure: bool) -> None:
        self.serializer = URLSafeTimedSerializer(secret_keys, salt="sendwell.admin.session")
        self.secure = secure

    def read(self, request: Request) -> AdminSession | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self.serializer.loads(raw, max_age=MAX_AGE)
            return AdminSession(csrf=str(data["c"]), user_id=data.get("u"), fingerprint=str(data.get("f", "")),
                                session_id=str(data.get("s", "")))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None

    def write(self, response: Response, session: AdminSession) -> None:
        value = self.serializer.dumps({"c": session.csrf, "u": session.user_id, "f": session.fingerprint,
                                       "s": session.session_id})
        # HttpOnly: no script reads it; SameSite=Lax: other sites' POSTs arrive without it.
        response.set_cookie(COOKIE, value, max_age=MAX_AGE, httponly=True, samesite="lax", secure=self.secure,
                            path="/admin")

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="lax", secure=self.secure)


def new_session(user: AdminUser | None = None, session_id: str = "") -> AdminSession:
    """A fresh session with a new CSRF token (a new one at sign-in: no session fixation)."""
    return AdminSession(csrf=secrets.token_urlsafe(32), user_id=user.id if user else None,
                        fingerprint=fingerprint(user) if user else "", session_id=session_id)


def csrf_ok(session: AdminSession | None, form: Any, headers: Any) -> bool:
    """The form field (or the htmx header) equals the session's token."""
    if session is None:
        return False
    presented = str(form.get(CSRF_FIELD) or "") if form is not None else ""
    presented = presented or headers.get(CSRF_HEADER, "")
    return bool(presented) and hmac.compare_digest(presented.encode(), session.csrf.encode())


def allows(role: str, needed: str) -> bool:
    return RANK.get(role, -1) >= RANK[needed]
