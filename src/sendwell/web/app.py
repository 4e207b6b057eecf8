"""The ASGI app: recipient pages (unsubscribe, preferences) and health; views stay thin."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import text

from sendwell.db.models import Campaign, Contact
from sendwell.db.session import transaction
from sendwell.optout.service import unsubscribe_contact
from sendwell.optout.tokens import (
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    InvalidToken,
    TokenData,
    make_token,
    read_token,
)
from sendwell.runtime import Runtime
from sendwell.web.feedback_routes import feedback_router

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def mask_email(email: str) -> str:
    """`ma***@example.com`: enough for the person to recognise, little for a bystander."""
    local, _, domain = email.partition("@")
    shown = local[:2] if len(local) > 3 else local[:1]
    return f"{shown}***@{domain}"


def create_app(runtime: Runtime) -> FastAPI:
    """The web app over one runtime (settings, database)."""
    app = FastAPI(title="Sendwell", docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    settings = runtime.settings

    def page(request: Request, name: str, status: int = 200, **ctx: object) -> HTMLResponse:
        ctx.setdefault("company", settings.company_name)
        ctx.setdefault("postal_address", settings.postal_address)
        ctx.setdefault("contact_email", settings.contact_email)
        return TEMPLATES.TemplateResponse(request, name, ctx, status_code=status)

    def invalid(request: Request) -> HTMLResponse:
        return page(request, "invalid_link.html", status=404)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    @app.get("/u/{token}", response_class=HTMLResponse)
    def unsubscribe_page(request: Request, token: str) -> Response:
        # RFC 8058 §1: link scanners prefetch GETs, so a GET only shows the page.
        try:
            data = read_token(settings.secret_keys, SALT_UNSUBSCRIBE, token)
        except InvalidToken:
            return invalid(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, data.contact_id)
            if contact is None:
                return invalid(request)
            return page(
                request, "unsubscribe.html", masked=mask_email(contact.email),
                action=f"/u/{token}", sender=settings.from_,
                preferences_url=f"/p/{make_token(settings.secret_keys, SALT_PREFERENCES, data)}",
            )

    @app.post("/u/{token}")
    async def one_click(request: Request, token: str) -> Response:
        # RFC 8058 §3.1–3.2: no cookie, login or confirmation; any well-formed token POST is
        # the one-click, whatever the body (urlencoded, multipart, or none), and never a 3xx.
        try:
            data = read_token(settings.secret_keys, SALT_UNSUBSCRIBE, token)
        except InvalidToken:
            return HTMLResponse("Invalid or expired link; nothing was changed.\n", status_code=400)
        method = await _method_of(request)
        from starlette.concurrency import run_in_threadpool

        result = await run_in_threadpool(_unsubscribe, runtime, data, method, request)
        if result is None:
            return HTMLResponse("Unknown recipient; nothing was changed.\n", status_code=404)
        return page(request, "unsubscribed.html", masked=result)

    @app.get("/p/{token}", response_class=HTMLResponse)
    def preferences(request: Request, token: str) -> Response:
        try:
            data = read_token(settings.secret_keys, SALT_PREFERENCES, token)
        except InvalidToken:
            return invalid(request)
        with transaction(runtime.factory) as session:
            contact = session.get(Contact, data.contact_id)
            if contact is None:
                return invalid(request)
            campaign = session.get(Campaign, data.campaign_id) if data.campaign_id else None
            return page(
                request, "preferences.html", masked=mask_email(contact.email),
                campaign=campaign.name if campaign else None,
                action=f"/u/{make_token(settings.secret_keys, SALT_UNSUBSCRIBE, data)}",
            )

    from sendwell.web.tracking_routes import tracking_router

    app.include_router(tracking_router(runtime))
    app.include_router(feedback_router(runtime))  # provider webhooks (issue 8)
    from sendwell.web.api import mount_api

    mount_api(app, runtime)
    from sendwell.web.metrics import metrics_router

    app.include_router(metrics_router(runtime))
    return app


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


def _unsubscribe(runtime: Runtime, data: TokenData, method: str, request: Request) -> str | None:
    # Committed before the response is built: the opt-out is effective when the 200 leaves.
    with transaction(runtime.factory) as session:
        result = unsubscribe_contact(
            session,
            contact_id=data.contact_id,
            campaign_id=data.campaign_id,
            method=method,
            ip=request.client.host if request.client else "",
            user_agent=request.headers.get("user-agent", ""),
        )
        if result is None:
            return None
        contact = session.get(Contact, data.contact_id)
        return mask_email(contact.email) if contact else ""
