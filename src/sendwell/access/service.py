"""API tokens: create (shown once), list, revoke, and authenticate a presented token.

Only SHA-256 of a token is stored. A slow password hash (argon2) protects low-entropy
secrets that people choose; these tokens are 256 random bits from `secrets`, so a
pre-image search is as hopeless against one SHA-256 round as against argon2, and a fast
hash lets each request find its token through a unique index instead of trying every row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.db.models import ApiToken

TOKEN_PREFIX = "swk_"
ADMIN = "admin"
# What each scope allows; `admin` allows everything.
SCOPES: dict[str, str] = {
    "contacts:read": "read contacts, consents, topics, subscriptions, segments; check suppressions",
    "contacts:write": "create and change contacts, consents, subscriptions, topics, segments; "
                      "add suppressions; unsubscribe a contact",
    "events:write": "post engagement events (clicked, replied, engaged) and named events from a website or CRM",
    "signups:write": "hand over a signup from a website form; the person gets the confirmation mail",
    "campaigns:read": "read campaigns, their status and sends",
    "events:read": "read events (sent, unsubscribed, bounced, clicked, …)",
    "campaigns:write": "create, send, pause, resume and cancel campaigns",
    "contacts:erase": "erase a contact (GDPR Art 17): delete the data, keep the suppression hash",
    "reports:read": "read reports",
    "sequences:read": "read sequences, their per-step report and dry run",
    "sequences:write": "create, change, pause and resume sequences and their paused steps",
    "webhooks:read": "read the webhook endpoints and the delivery log",
    "webhooks:write": "redeliver a webhook event",
    "metrics:read": "scrape /metrics",
    ADMIN: "everything",
}


class TokenError(ValueError):
    """The token cannot be created or changed as asked."""


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the only time the plain token exists outside the caller's hands


def hash_token(secret: str) -> str:
    """SHA-256 hex of a presented token (see the module docstring for why that is enough)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, *, name: str, scopes: list[str], now: datetime | None = None) -> NewToken:
    """Store a new token with these scopes; the plain token is returned once, never stored."""
    name = name.strip()
    if not name:
        raise TokenError("the token needs a name")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise TokenError(f"unknown scope {unknown[0]!r} (use one of {', '.join(SCOPES)})")
    if not scopes:
        raise TokenError(f"give at least one scope (one of {', '.join(SCOPES)})")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits
    token = ApiToken(
        name=name, token_hash=hash_token(secret), prefix=secret[:10],
        scopes=sorted(set(scopes)), created_at=now or datetime.now(timezone.utc),
    )
    session.add(token)
    session.flush()
    return NewToken(token=token, secret=secret)


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, revoked ones included (they stay for the audit trail)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, *, token_id: int, now: datetime | None = None) -> ApiToken:
    """Revoke a token at once; revoking twice keeps the first time."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise TokenError(f"no API token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = now or datetime.now(timezone.utc)
        session.flush()
    return token


def authenticate(session: Session, *, secret: str, now: datetime | None = None) -> ApiToken | None:
    """The live token matching a presented secret, or None (unknown or revoked)."""
    digest = hash_token(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    # The index finds the row; the constant-time compare keeps the check itself uniform.
    if token is None or not hmac.compare_digest(token.token_hash, digest) or token.revoked_at is not None:
        return None
    now = now or datetime.now(timezone.utc)
    # Written at most once a minute per token, so a busy integration does not turn reads into writes.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
        session.flush()
    return token


def allows(token: ApiToken, scope: str) -> bool:
    """True if the token carries the scope, or admin."""
    return ADMIN in token.scopes or scope in token.scopes
