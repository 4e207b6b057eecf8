"""The ASGI app: recipient pages (unsubscribe, alternatives, reasons, undo, preferences) and health.

Views stay thin: parse, call one service function in one transaction, render. A GET never
changes anything (RFC 8058 §1: link scanners prefetch); every change is a POST of a plain
HTML form, so the pages work without JavaScript.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select, text
from starlette.concurrency import run_in_threadpool

from sendwell.db.models import Campaign, Contact, Subscription, Topic
from sendwell.db.session import transaction
from sendwell.i18n import SUPPORTED, choose_language, normalise_language
from sendwell.optout import service
from sendwell.optout.dispatch import mask_email
from sendwell.optout.gate import await_hand_off, hand_off_window, wait_for_hand_off
from sendwell.optout.mail import gettext_for
from sendwell.optout.tokens import (
    SALT_KEEP,
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    InvalidToken,
    TokenData,
    make_token,
    read_confirm_token,
    read_token,
)
from sendwell.runtime import Runtime
from sendwell.web.feedback_routes import feedback_router

_ONE_CLICK_DONE = ("<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>Unsubscribed</title>"
                   "<p>You are unsubscribed. This took effect immediately.</p></html>\n")
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
LANGUAGE_NAMES = {"en": "English", "zh_Hans": "简体中文", "de": "Deutsch", "fr": "Français", "es": "Español"}

__all__ = ["create_app", "mask_email"]


def _client(request: Request) -> tuple[str, str]:
    return (request.client.host if request.client else ""), request.headers.get("user-agent", "")


def create_app(runtime: Runtime, *, outbox: bool = True) -> FastAPI:
    """The web app over one runtime (settings, database); `outbox` runs the follow-up dispatcher."""
    from sendwell.optout.outbox import OutboxWorker

    worker = OutboxWorker(runtime) if outbox else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
            worker.wake()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(title="Sendwell", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.outbox = worker
    settings = runtime.settings
    inline_writes = runtime.engine.dialect.name == "sqlite"

    def wake() -> None:
        if worker is not None:
            worker.wake()

    def language_of(request: Request, contact: Contact | None) -> str:
        # An explicit choice on the page first, then the contact's language, then the browser's.
        chosen = normalise_language(request.query_params.get("lang"))
        return chosen or choose_language(contact.language if contact else None,
                                         request.headers.get("accept-language"))

    def page(request: Request, name: str, lang: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.update(
            _=gettext_for(lang), lang=lang, html_lang=lang.replace("_", "-"),
            sep="" if lang.startswith("zh") else " ",  # Chinese sentences are not space-separated
            company=settings.company_name, postal_address=settings.postal_address,
            contact_email=settings.contact_email, contact_phone=settings.contact_phone,
            website=settings.website, privacy_url=settings.privacy_url, path=request.url.path,
            languages=[(code, LANGUAGE_NAMES[code]) for code in SUPPORTED],
            qs=f"?lang={lang}" if request.query_params.get("lang") else "",
        )
        return TEMPLATES.TemplateResponse(request, name, ctx, status_code=status,
                                          headers={"Cache-Control": "no-store", "Content-Language": ctx["html_lang"]})

    def invalid(request: Request, status: int = 404) -> HTMLResponse:
        return page(request, "invalid_link.html", language_of(request, None), status=status)

    def read(token: str, salt: str) -> TokenData | None:
        try:
            return read_token(settings.secret_keys, salt, token)
        except InvalidToken:
            return None

    def unsubscribed_view(request: Request, session: Any, contact: Contact, token: str, **extra: Any) -> HTMLResponse:
        return page(request, "unsubscribed.html", language_of(request, contact), masked=mask_email(contact.email),
                    token=token, reasons=service.REASONS, **extra)

    # ------------------------------------------------------------------ health
    @app.get("/healthz")
    def healthz() -> JSONResponse:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    # ------------------------------------------------------------------ unsubscribe
    @app.get("/u/{token}", response_class=HTMLResponse)
    def unsubscribe_page(request: Request, token: str) -> Response:
        # RFC 8058 §1: link scanners prefetch GETs, so a GET only shows the page.
        data = read(token, SALT_UNSUBSCRIBE)
        if data is None:
            return invalid(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, data.contact_id)
            if contact is None:
                return invalid(request)
            if service.is_unsubscribed(session, contact=contact):
                # The thank-you mail's undo link lands here: show the state, the survey and Undo.
                return unsubscribed_view(request, session, contact, token, already=True)
            return page(request, "unsubscribe.html", language_of(request, contact),
                        masked=mask_email(contact.email), token=token, sender=settings.from_,
                        frequency=contact.frequency_tier, paused_until=contact.paused_until,
                        preferences_url=f"/p/{make_token(settings.secret_keys, SALT_PREFERENCES, data)}")

    @app.post("/u/{token}")
    async def one_click(request: Request, token: str) -> Response:
        # RFC 8058 §3.1–3.2: no cookie, login or confirmation; any well-formed token POST is
        # the one-click, whatever the body (urlencoded, multipart, or none), and never a 3xx.
        data = read(token, SALT_UNSUBSCRIBE)
        if data is None:
            return HTMLResponse("Invalid link; nothing was changed.\n", status_code=400)
        method = await _method_of(request)
        ip, ua = _client(request)
        if inline_writes:
            # SQLite has one writer, so a thread pool adds no parallelism, only two thread
            # hand-offs per request. Instead the POSTs that arrive in one turn of the event
            # loop are written in one transaction (group commit); each 200 still leaves only
            # after that commit (bench/unsubscribe.py).
            result = await group.submit(data, method, ip, ua)
        else:
            result = await run_in_threadpool(_unsubscribe_one, data, method, ip, ua)
        return _answer_unsubscribe(request, result, token, method)

    def _unsubscribe_one(data: TokenData, method: str, ip: str, ua: str) -> service.OptOutResult | None:
        # Committed before the response is built: the opt-out is effective when the 200 leaves.
        with transaction(runtime.factory) as session:
            result = service.unsubscribe_contact(session, contact_id=data.contact_id, campaign_id=data.campaign_id,
                                                 method=method, ip=ip, user_agent=ua)
        if result is not None and result.hand_off_pending:  # see _GroupCommit.submit
            wait_for_hand_off(runtime.engine, result.contact_id, window=hand_off_window(settings.smtp_timeout))
        return result

    group = _GroupCommit(runtime, wake=lambda: wake())

    if inline_writes:
        app.add_middleware(_OneClickFastPath, read=lambda t: read(t, SALT_UNSUBSCRIBE), group=group, wake=wake)

    def _answer_unsubscribe(request: Request, result: service.OptOutResult | None, token: str,
                            method: str) -> Response:
        if result is None:
            return HTMLResponse("Unknown recipient; nothing was changed.\n", status_code=404)
        wake()
        if method == "one_click":
            # A mail client's RFC 8058 POST: nobody reads the body, so it stays small and
            # cheap (this is the hot path); a person who opens the link gets the full page.
            return HTMLResponse(_ONE_CLICK_DONE, headers={"Cache-Control": "no-store"})
        lang = normalise_language(request.query_params.get("lang")) or choose_language(
            result.language, request.headers.get("accept-language"))
        return page(request, "unsubscribed.html", lang, masked=mask_email(result.email), token=token,
                    reasons=service.REASONS)

    @app.post("/u/{token}/alternative", response_class=HTMLResponse)
    async def alternative(request: Request, token: str) -> Response:
        data = read(token, SALT_UNSUBSCRIBE)
        if data is None:
            return invalid(request, 400)
        form = await request.form()
        ip, ua = _client(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, data.contact_id)
            if contact is None:
                return invalid(request)
            try:
                service.apply_alternative(session, contact_id=contact.id, choice=str(form.get("choice", "")),
                                          ip=ip, user_agent=ua)
            except service.OptOutError:
                return page(request, "invalid_link.html", language_of(request, contact), status=400)
            wake()
            return page(request, "alternative_done.html", language_of(request, contact),
                        masked=mask_email(contact.email), token=token, choice=str(form.get("choice")),
                        paused_until=contact.paused_until,
                        preferences_url=f"/p/{make_token(settings.secret_keys, SALT_PREFERENCES, data)}")

    @app.post("/u/{token}/reason", response_class=HTMLResponse)
    async def reason(request: Request, token: str) -> Response:
        data = read(token, SALT_UNSUBSCRIBE)
        if data is None:
            return invalid(request, 400)
        form = await request.form()
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, data.contact_id)
            if contact is None:
                return invalid(request)
            chosen = str(form.get("reason", ""))
            try:
                service.record_reason(session, contact_id=contact.id, reason=chosen,
                                      text=str(form.get("text", ""))[:4000], campaign_id=data.campaign_id)
            except service.OptOutError:
                # The survey is optional: no answer is fine, and it is never a condition.
                return unsubscribed_view(request, session, contact, token, reason_missing=True)
            return unsubscribed_view(request, session, contact, token, reason_saved=True)

    @app.post("/u/{token}/undo", response_class=HTMLResponse)
    def undo(request: Request, token: str) -> Response:
        data = read(token, SALT_UNSUBSCRIBE)
        if data is None:
            return invalid(request, 400)
        return _resubscribe(request, data.contact_id, token)

    # ------------------------------------------------------------------ keep me subscribed (hygiene)
    @app.get("/k/{token}", response_class=HTMLResponse)
    def keep_page(request: Request, token: str) -> Response:
        # A GET only shows the button: link scanners prefetch, and an answer must be the person's.
        data = read(token, SALT_KEEP)
        if data is None:
            return invalid(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, data.contact_id)
            if contact is None:
                return invalid(request)
            return page(request, "keep.html", language_of(request, contact), masked=mask_email(contact.email),
                        token=token,
                        preferences_url=f"/p/{make_token(settings.secret_keys, SALT_PREFERENCES, data)}")

    @app.post("/k/{token}", response_class=HTMLResponse)
    def keep(request: Request, token: str) -> Response:
        from sendwell.hygiene.service import HygieneError, keep_subscribed

        data = read(token, SALT_KEEP)
        if data is None:
            return invalid(request, 400)
        ip, ua = _client(request)
        with transaction(runtime.factory) as session:
            try:
                result = keep_subscribed(session, contact_id=data.contact_id, campaign_id=data.campaign_id,
                                         ip=ip, user_agent=ua)
            except HygieneError:
                return invalid(request)
            contact = session.get(Contact, data.contact_id)
            lang, masked = language_of(request, contact), mask_email(contact.email if contact else "")
        return page(request, "kept.html", lang, status_=result.status, masked=masked,
                    preferences_url=f"/p/{make_token(settings.secret_keys, SALT_PREFERENCES, data)}")

    def _resubscribe(request: Request, contact_id: int, token: str) -> Response:
        ip, ua = _client(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, contact_id)
            if contact is None:
                return invalid(request)
            result = service.resubscribe_contact(session, contact_id=contact.id, ip=ip, user_agent=ua)
            if result.status == "needs_confirmation":
                service.request_confirmation(session, contact_id=contact.id)
            lang = language_of(request, contact)
            masked = mask_email(contact.email)
        wake()
        return page(request, "resubscribed.html", lang, status_=result.status, masked=masked,
                    preferences_url=f"/p/{make_token(settings.secret_keys, SALT_PREFERENCES, TokenData(contact_id, None, None))}")

    # ------------------------------------------------------------------ preference center
    def _preferences_ctx(session: Any, contact: Contact) -> dict[str, Any]:
        topics = list(session.scalars(select(Topic).order_by(Topic.name)))
        on = set(session.scalars(select(Subscription.topic_id).where(
            Subscription.contact_id == contact.id, Subscription.status == "subscribed")))
        return dict(masked=mask_email(contact.email), topics=topics, subscribed=on,
                    frequency=contact.frequency_tier if contact.frequency_tier in service.FREQUENCY_TIERS else "weekly",
                    paused_until=contact.paused_until, contact_language=normalise_language(contact.language) or "en",
                    unsubscribed=service.is_unsubscribed(session, contact=contact))

    @app.get("/p/{token}", response_class=HTMLResponse)
    def preferences(request: Request, token: str) -> Response:
        data = read(token, SALT_PREFERENCES)
        if data is None:
            return invalid(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, data.contact_id)
            if contact is None:
                return invalid(request)
            campaign = session.get(Campaign, data.campaign_id) if data.campaign_id else None
            return page(request, "preferences.html", language_of(request, contact), token=token,
                        campaign=campaign.name if campaign else None,
                        unsubscribe_token=make_token(settings.secret_keys, SALT_UNSUBSCRIBE, data),
                        **_preferences_ctx(session, contact))

    @app.post("/p/{token}", response_class=HTMLResponse)
    async def save_preferences(request: Request, token: str) -> Response:
        data = read(token, SALT_PREFERENCES)
        if data is None:
            return invalid(request, 400)
        form = await request.form()
        ip, ua = _client(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, data.contact_id)
            if contact is None:
                return invalid(request)
            try:
                pause = str(form.get("pause", "keep"))
                changes = service.update_preferences(
                    session, contact_id=contact.id, method="preference_center", ip=ip, user_agent=ua,
                    topics=[int(t) for t in form.getlist("topic")] if form.get("topics_shown") else None,
                    frequency=str(form.get("frequency")) if form.get("frequency") else None,
                    pause_months=None if pause == "keep" else int(pause),
                    language=str(form.get("language")) if form.get("language") else None,
                )
            except (service.OptOutError, ValueError):
                session.rollback()
                return page(request, "invalid_link.html", language_of(request, contact), status=400)
            wake()
            return page(request, "preferences.html", language_of(request, contact), token=token, saved=True,
                        changed=bool(changes), campaign=None,
                        unsubscribe_token=make_token(settings.secret_keys, SALT_UNSUBSCRIBE, data),
                        **_preferences_ctx(session, contact))

    # ------------------------------------------------------------------ manage by address (magic link)
    @app.get("/manage", response_class=HTMLResponse)
    def manage(request: Request) -> Response:
        return page(request, "manage.html", language_of(request, None))

    @app.post("/manage", response_class=HTMLResponse)
    async def manage_request(request: Request) -> Response:
        form = await request.form()
        address = str(form.get("email", ""))[:320]
        with transaction(runtime.factory) as session:
            service.request_magic_link(session, email=address)
        wake()
        # The same answer whether or not the address is known: nothing is disclosed.
        return page(request, "manage.html", language_of(request, None), sent=True)

    # ------------------------------------------------------------------ double opt-in
    @app.get("/c/{token}", response_class=HTMLResponse)
    def confirm_page(request: Request, token: str) -> Response:
        try:
            contact_id = read_confirm_token(settings.secret_keys, token)
        except InvalidToken:
            return invalid(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, contact_id)
            if contact is None:
                return invalid(request)
            return page(request, "confirm.html", language_of(request, contact), masked=mask_email(contact.email),
                        token=token)

    @app.post("/c/{token}", response_class=HTMLResponse)
    def confirm(request: Request, token: str) -> Response:
        try:
            contact_id = read_confirm_token(settings.secret_keys, token)
        except InvalidToken:
            return invalid(request, 400)
        ip, ua = _client(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, contact_id)
            if contact is None:
                return invalid(request)
            result = service.confirm_double_opt_in(session, contact_id=contact.id, ip=ip, user_agent=ua)
            lang, masked = language_of(request, contact), mask_email(contact.email)
        wake()
        return page(request, "resubscribed.html", lang, status_=result.status, masked=masked,
                    preferences_url=f"/p/{make_token(settings.secret_keys, SALT_PREFERENCES, TokenData(contact_id, None, None))}")

    from sendwell.web.tracking_routes import tracking_router

    app.include_router(tracking_router(runtime))
    app.include_router(feedback_router(runtime))  # provider webhooks (issue 8)
    from sendwell.web.api import mount_api

    mount_api(app, runtime, wake)
    from sendwell.web.admin import mount_admin

    mount_admin(app, runtime)  # the web admin under /admin (issue 11)
    from sendwell.web.metrics import metrics_router

    app.include_router(metrics_router(runtime))
    return app


class _OneClickFastPath:
    """A mail client's RFC 8058 POST to /u/TOKEN, answered without routing and dependency injection.

    It is the one request that can arrive in bursts of thousands (a big campaign, a
    provider's unsubscribe button); it does exactly what the routed view does for a
    `one_click` (same token check, same service call in a committed transaction, same
    answers). Our own forms (they carry `source`) and multipart bodies go to the view.
    """

    def __init__(self, app: Any, read: Any, group: Any, wake: Any) -> None:
        self.app, self.read, self.group, self.wake = app, read, group, wake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not path.startswith("/u/") or "/" in path[3:]:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        body, more = b"", True
        while more and len(body) <= 65536:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        fields = {} if content_type.startswith("multipart/") else parse_qs(body[:4096].decode("utf-8", "replace"))
        if more or content_type.startswith("multipart/") or "source" in fields or scope.get("query_string"):
            replayed = False

            async def replay() -> Any:
                # Hand the body already read to the view, then the rest of the stream.
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": more}
                return await receive()

            return await self.app(scope, replay, send)
        data = self.read(path[3:])
        if data is None:
            return await _plain(send, 400, b"Invalid link; nothing was changed.\n")
        client = scope.get("client")
        result = await self.group.submit(data, "one_click", client[0] if client else "",
                                         headers.get(b"user-agent", b"").decode("latin-1"))
        if result is None:
            return await _plain(send, 404, b"Unknown recipient; nothing was changed.\n")
        self.wake()
        await _plain(send, 200, _ONE_CLICK_DONE.encode(), b"text/html; charset=utf-8")


async def _plain(send: Any, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


class _GroupCommit:
    """Write the one-click opt-outs that arrive in one event-loop turn in one transaction."""

    def __init__(self, runtime: Runtime, wake: Any) -> None:
        self.runtime = runtime
        self.wake = wake
        self.pending: list[tuple[tuple[TokenData, str, str, str], asyncio.Future[Any]]] = []
        self.scheduled = False

    async def submit(self, data: TokenData, method: str, ip: str, ua: str) -> service.OptOutResult | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.pending.append(((data, method, ip, ua), future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.flush)
        result = await future
        if result is not None and result.hand_off_pending:
            # A mail to this person was being handed to SMTP when the opt-out committed: the
            # answer waits for that hand-off, so no mail leaves after it (optout/gate.py).
            await await_hand_off(self.runtime.engine, result.contact_id,
                                 window=hand_off_window(self.runtime.settings.smtp_timeout))
        return result

    def flush(self) -> None:
        batch, self.pending, self.scheduled = self.pending, [], False
        try:
            with transaction(self.runtime.factory) as session:
                results = [service.unsubscribe_contact(session, contact_id=d.contact_id, campaign_id=d.campaign_id,
                                                       method=m, ip=ip, user_agent=ua)
                           for (d, m, ip, ua), _ in batch]
        except Exception as exc:  # nothing was committed: every request in the batch fails
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)


async def _method_of(request: Request) -> str:
    """Which of our forms posted (they add `source`), else `one_click` (a mail client's POST)."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            fields = {k: str(v) for k, v in form.items()}
        else:
            body = (await request.body())[:4096].decode("utf-8", "replace")
            fields = {k: v[0] for k, v in parse_qs(body).items()}
    except Exception:  # a mangled body is still a one-click request (COMPLIANCE notes)
        fields = {}
    return {"page": "page", "preferences": "preference_center"}.get(fields.get("source", ""), "one_click")
