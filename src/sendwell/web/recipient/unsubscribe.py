"""The unsubscribe page: its alternatives (fewer mails, launches only, a pause) and the reason survey.

A GET never changes anything (RFC 8058 §1: link scanners prefetch); every change is a POST
of a plain HTML form, so the pages work without JavaScript. The unsubscribe itself (the
POST to the page's own URL) is in one_click.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from sendwell.db.session import transaction
from sendwell.optout import service
from sendwell.optout.followup_mails import mask_email
from sendwell.optout.preferences import get_recipient
from sendwell.optout.tokens import SALT_UNSUBSCRIBE
from sendwell.runtime import Runtime
from sendwell.web.recipient.links import Link, preferences_url, recipient_from_token
from sendwell.web.recipient.rendering import RecipientPages, client_of

unsubscribe_link = recipient_from_token(SALT_UNSUBSCRIBE)


def unsubscribed_page(pages: RecipientPages, request: Request, link: Link, **extra: Any) -> HTMLResponse:
    """The "you are unsubscribed" page with the reason survey and Undo."""
    person = link.recipient
    return pages.page(request, "unsubscribed.html", pages.language_of(request, person.language),
                      masked=mask_email(person.email), token=link.token, reasons=service.REASONS, **extra)


def unsubscribe_router(runtime: Runtime, pages: RecipientPages, wake: Any) -> APIRouter:
    """GET /u/TOKEN and its alternative and reason forms."""
    router = APIRouter()

    @router.get("/u/{token}", response_class=HTMLResponse)
    def unsubscribe_page(request: Request, link: Link = Depends(unsubscribe_link)) -> Response:
        # RFC 8058 §1: link scanners prefetch GETs, so a GET only shows the page.
        person, settings = link.recipient, runtime.settings
        if person.is_unsubscribed:
            # The thank-you mail's undo link lands here: show the state, the survey and Undo.
            return unsubscribed_page(pages, request, link, already=True)
        return pages.page(request, "unsubscribe.html", pages.language_of(request, person.language),
                          masked=mask_email(person.email), token=link.token, sender=settings.from_,
                          frequency=person.frequency_tier, paused_until=person.paused_until,
                          preferences_url=preferences_url(settings.secret_keys, link.data))

    @router.post("/u/{token}/alternative", response_class=HTMLResponse)
    async def alternative(request: Request, link: Link = Depends(unsubscribe_link)) -> Response:
        form = await request.form()
        ip, ua = client_of(request)
        person = link.recipient
        lang = pages.language_of(request, person.language)
        with transaction(runtime.factory) as session:
            try:
                service.apply_alternative(session, contact_id=person.contact_id,
                                          choice=str(form.get("choice", "")), ip=ip, user_agent=ua)
            except service.OptOutError:
                return pages.page(request, "invalid_link.html", lang, status=400)
            after = get_recipient(session, contact_id=person.contact_id)
        wake()
        return pages.page(request, "alternative_done.html", lang, masked=mask_email(person.email), token=link.token,
                          choice=str(form.get("choice")), paused_until=after.paused_until if after else None,
                          preferences_url=preferences_url(runtime.settings.secret_keys, link.data))

    @router.post("/u/{token}/reason", response_class=HTMLResponse)
    async def reason(request: Request, link: Link = Depends(unsubscribe_link)) -> Response:
        form = await request.form()
        with transaction(runtime.factory) as session:
            try:
                service.record_reason(session, contact_id=link.recipient.contact_id,
                                      reason=str(form.get("reason", "")), text=str(form.get("text", ""))[:4000],
                                      campaign_id=link.data.campaign_id)
            except service.OptOutError:
                # The survey is optional: no answer is fine, and it is never a condition.
                return unsubscribed_page(pages, request, link, reason_missing=True)
        return unsubscribed_page(pages, request, link, reason_saved=True)

    return router
