"""Staying or coming back by the person's own click: Undo, "keep me subscribed", double opt-in."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from sendwell.db.session import transaction
from sendwell.hygiene.service import HygieneError, keep_subscribed
from sendwell.optout import service
from sendwell.optout.followup_mails import mask_email
from sendwell.optout.tokens import SALT_CONFIRM, SALT_KEEP, SALT_UNSUBSCRIBE, TokenData
from sendwell.runtime import Runtime
from sendwell.web.recipient.links import InvalidLink, Link, preferences_url, recipient_from_token
from sendwell.web.recipient.rendering import RecipientPages, client_of

unsubscribe_link = recipient_from_token(SALT_UNSUBSCRIBE)
keep_link = recipient_from_token(SALT_KEEP)
confirm_link = recipient_from_token(SALT_CONFIRM)


def resubscribe_router(runtime: Runtime, pages: RecipientPages, wake: Any) -> APIRouter:
    """POST /u/TOKEN/undo, /k/TOKEN (keep subscribed) and /c/TOKEN (double opt-in)."""
    router = APIRouter()

    def done_page(request: Request, link: Link, status: str) -> HTMLResponse:
        person = link.recipient
        return pages.page(request, "resubscribed.html", pages.language_of(request, person.language), status_=status,
                          masked=mask_email(person.email),
                          preferences_url=preferences_url(runtime.settings.secret_keys,
                                                          TokenData(person.contact_id, None, None)))

    @router.post("/u/{token}/undo", response_class=HTMLResponse)
    def undo(request: Request, link: Link = Depends(unsubscribe_link)) -> Response:
        ip, ua = client_of(request)
        contact_id = link.recipient.contact_id
        with transaction(runtime.factory) as session:
            result = service.resubscribe_contact(session, contact_id=contact_id, ip=ip, user_agent=ua)
            if result.status == "needs_confirmation":
                service.request_confirmation(session, contact_id=contact_id)
        wake()
        return done_page(request, link, result.status)

    @router.get("/k/{token}", response_class=HTMLResponse)
    def keep_page(request: Request, link: Link = Depends(keep_link)) -> Response:
        # A GET only shows the button: link scanners prefetch, and an answer must be the person's.
        person = link.recipient
        return pages.page(request, "keep.html", pages.language_of(request, person.language),
                          masked=mask_email(person.email), token=link.token,
                          preferences_url=preferences_url(runtime.settings.secret_keys, link.data))

    @router.post("/k/{token}", response_class=HTMLResponse)
    def keep(request: Request, link: Link = Depends(keep_link)) -> Response:
        ip, ua = client_of(request)
        with transaction(runtime.factory) as session:
            try:
                result = keep_subscribed(session, contact_id=link.data.contact_id,
                                         campaign_id=link.data.campaign_id, ip=ip, user_agent=ua)
            except HygieneError:
                raise InvalidLink(404) from None
        person = link.recipient
        return pages.page(request, "kept.html", pages.language_of(request, person.language), status_=result.status,
                          masked=mask_email(person.email),
                          preferences_url=preferences_url(runtime.settings.secret_keys, link.data))

    @router.get("/c/{token}", response_class=HTMLResponse)
    def confirm_page(request: Request, link: Link = Depends(confirm_link)) -> Response:
        person = link.recipient
        return pages.page(request, "confirm.html", pages.language_of(request, person.language),
                          masked=mask_email(person.email), token=link.token)

    @router.post("/c/{token}", response_class=HTMLResponse)
    def confirm(request: Request, link: Link = Depends(confirm_link)) -> Response:
        ip, ua = client_of(request)
        with transaction(runtime.factory) as session:
            result = service.confirm_double_opt_in(session, contact_id=link.recipient.contact_id, ip=ip,
                                                   user_agent=ua)
        wake()
        return done_page(request, link, result.status)

    return router
