"""The preference center (topics, frequency tier, pause, language) and the magic link to it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from sendwell.db.session import transaction
from sendwell.optout import service
from sendwell.optout.followup_mails import mask_email
from sendwell.optout.preferences import Preferences, get_preferences
from sendwell.optout.tokens import SALT_PREFERENCES, SALT_UNSUBSCRIBE, make_token
from sendwell.runtime import Runtime
from sendwell.web.recipient.links import InvalidLink, Link, recipient_from_token
from sendwell.web.recipient.rendering import RecipientPages, client_of

preferences_link = recipient_from_token(SALT_PREFERENCES)


def preferences_router(runtime: Runtime, pages: RecipientPages, wake: Any) -> APIRouter:
    """GET/POST /p/TOKEN and /manage (a preference-center link mailed to a known address)."""
    router = APIRouter()

    def preferences_page(request: Request, link: Link, prefs: Preferences | None, **extra: Any) -> HTMLResponse:
        if prefs is None:  # erased between the link check and this read
            raise InvalidLink(404)
        # After a save the page speaks the language just chosen.
        return pages.page(request, "preferences.html", pages.language_of(request, prefs.stored_language),
                          token=link.token, masked=mask_email(link.recipient.email),
                          unsubscribe_token=make_token(runtime.settings.secret_keys, SALT_UNSUBSCRIBE, link.data),
                          topics=prefs.topics, subscribed=prefs.subscribed, frequency=prefs.frequency,
                          paused_until=prefs.paused_until, contact_language=prefs.language,
                          unsubscribed=prefs.is_unsubscribed, **extra)

    @router.get("/p/{token}", response_class=HTMLResponse)
    def preferences(request: Request, link: Link = Depends(preferences_link)) -> Response:
        with transaction(runtime.factory) as session:
            prefs = get_preferences(session, contact_id=link.recipient.contact_id, campaign_id=link.data.campaign_id)
        # The subject as written, unless it holds template markup ({{ first_name }}) the person never saw.
        subject = prefs.campaign if prefs and prefs.campaign and "{{" not in prefs.campaign else None
        return preferences_page(request, link, prefs, campaign=subject)

    @router.post("/p/{token}", response_class=HTMLResponse)
    async def save_preferences(request: Request, link: Link = Depends(preferences_link)) -> Response:
        form = await request.form()
        ip, ua = client_of(request)
        with transaction(runtime.factory) as session:
            try:
                pause = str(form.get("pause", "keep"))
                changes = service.update_preferences(
                    session, contact_id=link.recipient.contact_id, method="preference_center", ip=ip, user_agent=ua,
                    topics=[int(t) for t in form.getlist("topic")] if form.get("topics_shown") else None,
                    frequency=str(form.get("frequency")) if form.get("frequency") else None,
                    pause_months=None if pause == "keep" else int(pause),
                    language=str(form.get("language")) if form.get("language") else None,
                )
            except (service.OptOutError, ValueError):
                session.rollback()
                return pages.page(request, "invalid_link.html",
                                  pages.language_of(request, link.recipient.language), status=400)
            prefs = get_preferences(session, contact_id=link.recipient.contact_id)
        wake()
        return preferences_page(request, link, prefs, saved=True, changed=bool(changes), campaign=None)

    @router.get("/manage", response_class=HTMLResponse)
    def manage(request: Request) -> Response:
        return pages.page(request, "manage.html", pages.language_of(request, None))

    @router.post("/manage", response_class=HTMLResponse)
    async def manage_request(request: Request) -> Response:
        form = await request.form()
        address = str(form.get("email", ""))[:320]
        with transaction(runtime.factory) as session:
            service.request_magic_link(session, email=address)
        wake()
        # The same answer whether or not the address is known: nothing is disclosed.
        return pages.page(request, "manage.html", pages.language_of(request, None), sent=True)

    return router
