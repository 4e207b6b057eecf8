"""The recipient pages: one-click and page unsubscribe, alternatives, reasons, undo, preferences, magic link.

Views stay thin: a signed link becomes a contact (links.py), one service call runs in one
transaction, a template is rendered (rendering.py). A GET never changes anything (RFC 8058
§1: link scanners prefetch).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from sendwell.optout.tokens import SALT_UNSUBSCRIBE
from sendwell.runtime import Runtime
from sendwell.web.recipient.links import InvalidLink, read_link
from sendwell.web.recipient.one_click import GroupCommit, OneClickFastPath, one_click_router
from sendwell.web.recipient.preferences import preferences_router
from sendwell.web.recipient.rendering import RecipientPages
from sendwell.web.recipient.resubscribe import resubscribe_router
from sendwell.web.recipient.unsubscribe import unsubscribe_router


def mount_recipient(app: FastAPI, runtime: Runtime, wake: Callable[[], None]) -> None:
    """Add the recipient pages, their invalid-link page and, on SQLite, the one-click fast path."""
    pages = RecipientPages(runtime)

    async def invalid_link(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, InvalidLink)
        return pages.invalid(request, exc.status)

    app.add_exception_handler(InvalidLink, invalid_link)
    # SQLite has one writer: one-click POSTs are written together (GroupCommit), and a mail
    # client's POST skips routing; on PostgreSQL each runs in the thread pool.
    group = GroupCommit(runtime) if runtime.engine.dialect.name == "sqlite" else None
    app.include_router(unsubscribe_router(runtime, pages, wake))
    app.include_router(one_click_router(runtime, pages, group, wake))
    app.include_router(resubscribe_router(runtime, pages, wake))
    app.include_router(preferences_router(runtime, pages, wake))
    if group is not None:
        app.add_middleware(OneClickFastPath,
                           read=lambda token: read_link(runtime.settings.secret_keys, SALT_UNSUBSCRIBE, token),
                           group=group, wake=wake)
