"""The web admin under /admin: server-rendered pages (Jinja2 + htmx) for marketers, in English and Chinese."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from sendwell.runtime import Runtime
from sendwell.web.admin import (
    campaigns,
    contacts,
    dashboard,
    domain,
    dmarc_page,
    editor_pages,
    feedback_review,
    forms_page,
    hygiene_page,
    importing,
    insight_pages,
    segments,
    sequences_page,
    session_routes,
    users,
)
from sendwell.web.admin.auth import Forbidden, NotSignedIn
from sendwell.web.admin.errors import page_language, viewer_or_none
from sendwell.web.admin.pages import HERE, TEMPLATES, Admin, gettext_for, security_headers


def mount_admin(app: FastAPI, runtime: Runtime) -> None:
    """Add the admin's routes, its static files and its two answers (sign in first; forbidden)."""
    admin = Admin(runtime)
    for module in (session_routes, dashboard, contacts, importing, campaigns, segments, insight_pages, hygiene_page,
                   users, feedback_review, dmarc_page, domain, editor_pages, forms_page, sequences_page):
        app.include_router(module.router(admin))
    app.mount("/admin/static", StaticFiles(directory=str(HERE / "static")), name="admin-static")

    @app.exception_handler(NotSignedIn)
    async def sign_in_first(request: Request, _exc: NotSignedIn) -> Response:
        target = "/admin/login?next=" + quote(request.url.path)
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> HTMLResponse:
        # No navigation on this page: it may answer a forged request, so it offers no token.
        lang = page_language(request, viewer_or_none(admin, request))
        _ = gettext_for(lang)
        # Values that are codes (a role) are catalog words too; anything else is shown as it is.
        message = _(exc.template, **{k: _(v) if isinstance(v, str) else v for k, v in exc.params.items()})
        context = {"message": message, "_": _, "lang": lang, "html_lang": lang.replace("_", "-"),
                   "csrf": "", "user": None, "path": request.url.path}
        return TEMPLATES.TemplateResponse(request, "forbidden.html", context, status_code=403,
                                          headers=security_headers())
