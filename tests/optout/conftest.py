"""Fixtures for the opt-out tests: the real web app over HTTP, tokens and counters."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from sendwell.db.models import Event, OutboxMessage, Suppression
from sendwell.db.session import transaction
from sendwell.optout.tokens import SALT_PREFERENCES, SALT_UNSUBSCRIBE, TokenData, make_token
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer


@pytest.fixture
def web(runtime, unused_port):
    """The app without its outbox thread, so tests decide when follow-ups are dispatched."""
    with BackgroundServer(create_app(runtime, outbox=False), unused_port) as srv:
        with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as client:
            yield client


def token(runtime, contact_id, purpose=SALT_UNSUBSCRIBE, campaign_id=None, keys=None) -> str:
    return make_token(keys or runtime.settings.secret_keys, purpose, TokenData(contact_id, campaign_id, None))


def u(runtime, contact_id, **kw) -> str:
    return f"/u/{token(runtime, contact_id, **kw)}"


def p(runtime, contact_id, **kw) -> str:
    return f"/p/{token(runtime, contact_id, purpose=SALT_PREFERENCES, **kw)}"


def count(runtime, model=Event, **where) -> int:
    with transaction(runtime.factory) as s:
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return s.scalar(query)


def suppressed(runtime) -> int:
    return count(runtime, Suppression)


def outbox(runtime, kind) -> list[OutboxMessage]:
    with transaction(runtime.factory) as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)))
