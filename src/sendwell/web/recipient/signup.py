"""The hosted signup form (/f/ID) and its double opt-in confirmation page (/f/c/TOKEN).

The POST of a form answers the same "check your inbox" page whatever became of the address
(queued, suppressed, asked recently, rate-limited, a bot's honeypot), so the form cannot be
used to learn who is on the list. The confirmation GET only shows a button: link scanners
fetch links in mail, and only a person's POST confirms.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from sendwell.db.models import Topic
from sendwell.db.session import transaction
from sendwell.optout.followup_mails import mask_email
from sendwell.optout.scanner import assess, is_suspected
from sendwell.optout.tokens import InvalidToken
from sendwell.runtime import Runtime
from sendwell.signup import service
from sendwell.signup.embed import HONEYPOT, field_label
from sendwell.signup.tokens import read_signup_token
from sendwell.web.recipient.rendering import RecipientPages, client_of


def signup_router(runtime: Runtime, pages: RecipientPages, wake: Any) -> APIRouter:
    """GET/POST /f/ID (the form) and GET/POST /f/c/TOKEN (the confirmation)."""
    router = APIRouter()

    def form_page(request: Request, form_id: int, *, status: int = 200, error: Any = None,
                  values: dict[str, Any] | None = None) -> HTMLResponse:
        with transaction(runtime.factory) as session:
            try:
                form = service.get_form(session, form_id=form_id)
            except service.FormNotFound:
                return pages.invalid(request, 404)
            names = dict(session.execute(select(Topic.slug, Topic.name).where(Topic.slug.in_(form.topics))).all())
            ctx = dict(form_id=form.id, form_name=form.name, consent=service.current_consent(form),
                       fields=[(key, field_label(key)) for key in form.fields],
                       topics=[(slug, names.get(slug, slug)) for slug in form.topics], language=form.language)
        lang = pages.language_of(request, ctx.pop("language"))
        return pages.page(request, "signup.html", lang, status=status, error=error, values=values or {},
                          honeypot=HONEYPOT, **ctx)

    @router.get("/f/{form_id}", response_class=HTMLResponse)
    def show_form(request: Request, form_id: int) -> Response:
        return form_page(request, form_id)

    @router.post("/f/{form_id}", response_class=HTMLResponse)
    async def submit(request: Request, form_id: int) -> Response:
        data = await request.form()
        values = {key: str(value) for key, value in data.items() if isinstance(value, str)}
        topics = [str(t) for t in data.getlist("topic")]
        ip, ua = client_of(request)
        settings = runtime.settings

        def run() -> tuple[str, str, str] | Response:
            try:
                with transaction(runtime.factory) as session:
                    form = service.get_form(session, form_id=form_id)
                    if form.topics and not topics and not values.get(HONEYPOT):
                        raise service.SignupError("Please choose at least one topic.")
                    if "consent" not in values and not values.get(HONEYPOT):
                        raise service.SignupError("Please tick the box to agree.")
                    service.submit_signup(session, form_id=form_id, values=values, topics=topics,
                                          pepper=settings.pepper, ip=ip, user_agent=ua,
                                          honeypot=values.get(HONEYPOT, ""),
                                          expire_days=settings.signup_expire_days)
                    return form.language, form.thanks_text, form.name
            except service.FormNotFound:
                return pages.invalid(request, 404)
            except service.SignupError as exc:
                return form_page(request, form_id, status=422, error=exc, values=values)

        outcome = await run_in_threadpool(run)
        if isinstance(outcome, Response):
            return outcome
        language, thanks, name = outcome
        wake()
        return pages.page(request, "signup_sent.html", pages.language_of(request, language), thanks=thanks,
                          form_name=name, days=settings.signup_expire_days)

    def pending(request: Request, token: str) -> tuple[int, str, str, bool] | None:
        """(signup id, page language, masked address, confirmed) for a valid link; None otherwise."""
        try:
            signup_id = read_signup_token(runtime.settings.secret_keys, token,
                                          max_age=runtime.settings.signup_expire_days * 86400)
        except InvalidToken:
            return None
        with transaction(runtime.factory) as session:
            signup = service.get_signup(session, signup_id=signup_id)
            if signup is None or not signup.email:  # deleted, or its address erased (GDPR Art 17)
                return None
            masked = signup.email if signup.confirmed_at else mask_email(signup.email)  # stored masked once confirmed
            return (signup.id, pages.language_of(request, signup.language), masked,
                    signup.confirmed_at is not None)

    @router.get("/f/c/{token}", response_class=HTMLResponse)
    def confirm_page(request: Request, token: str) -> Response:
        found = pending(request, token)
        if found is None:
            return pages.invalid(request, 404)
        _, lang, masked, confirmed = found
        if confirmed:
            return pages.page(request, "signup_confirmed.html", lang, status_="already_confirmed", masked=masked)
        return pages.page(request, "signup_confirm.html", lang, token=token, masked=masked)

    @router.post("/f/c/{token}", response_class=HTMLResponse)
    def confirm(request: Request, token: str) -> Response:
        found = pending(request, token)
        if found is None:
            return pages.invalid(request, 404)
        signup_id, lang, masked, _ = found
        ip, ua = client_of(request)
        # optout/scanner.py's rules: a security gateway's agent does not confirm for the person.
        # Speed is no sign here: a person waiting for the mail confirms within seconds.
        if is_suspected(assess(ip=ip, user_agent=ua, now=datetime.now(timezone.utc), sent_at=None)):
            return pages.page(request, "signup_confirm.html", lang, token=token, masked=masked)
        with transaction(runtime.factory) as session:
            result = service.confirm_signup(session, signup_id=signup_id, pepper=runtime.settings.pepper, ip=ip,
                                            user_agent=ua)
        if result.status in ("expired", "suppressed"):
            return pages.invalid(request, 404)
        wake()
        return pages.page(request, "signup_confirmed.html", lang, status_=result.status, masked=masked)

    return router
