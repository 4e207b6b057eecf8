"""Sign in, sign out, and the per-user language switch."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.routing import Match

from sendwell.access.sessions import revoke_session, start_session
from sendwell.access.users import LANGUAGES, Throttled, authenticate, update_user
from sendwell.db.session import transaction
from sendwell.i18n import choose_language
from sendwell.web.admin.auth import MAX_AGE, Forbidden, csrf_ok, new_session
from sendwell.web.admin.pages import Admin


def _safe_next(target: str) -> str:
    # Only our own pages: `//evil.example` or `https://…` would be an open redirect.
    return target if target.startswith("/admin") and not target.startswith("//") else "/admin"


def _page_to_show(request: Request, target: str) -> str:
    """The nearest page a GET can show: after a failed POST, `next` is often a form's own URL.

    /admin/campaigns/5/test answers only POST, so reloading it (as the redirect after a
    language switch does) would be a 405; its parent /admin/campaigns/5 is a page.
    """
    path = _safe_next(target)
    while path.count("/") > 1:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.routes):
            return path
        path = path.rsplit("/", 1)[0]
    return "/admin/dashboard"


def router(admin: Admin) -> APIRouter:
    r = APIRouter(prefix="/admin")

    def login_page(request: Request, *, status: int = 200, error: str = "", email: str = "") -> Response:
        session = admin.codec.read(request)
        fresh = session is None
        if session is None:
            session = new_session()
        lang = choose_language(None, request.headers.get("accept-language"))
        lang = lang if lang in LANGUAGES else "en"
        response = admin.render(request, "login.html", None, status=status, language=lang, csrf=session.csrf,
                                error=error, email=email, next=_safe_next(request.query_params.get("next", "")))
        if fresh:
            admin.codec.write(response, session)
        return response

    @r.get("/login")
    def login_form(request: Request) -> Response:
        return login_page(request)

    @r.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(admin.codec.read(request), form, request.headers):
            raise Forbidden("missing or wrong CSRF token: reload the sign-in page and try again")
        email, password = str(form.get("email", ""))[:320], str(form.get("password", ""))[:1024]
        ip = request.client.host if request.client else ""
        try:
            with transaction(admin.runtime.factory) as db:
                user = authenticate(db, email=email, password=password, ip=ip).user
                session = None if user is None else new_session(
                    user, start_session(db, user_id=user.id, max_age=MAX_AGE))
        except Throttled:
            response = login_page(request, status=429, error="throttled", email=email)
            response.headers["Retry-After"] = "900"
            return response
        if session is None:
            return login_page(request, status=401, error="wrong", email=email)
        response = RedirectResponse(_safe_next(str(form.get("next", ""))), status_code=303)
        admin.codec.write(response, session)
        return response

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        session = admin.codec.read(request)
        if not csrf_ok(session, form, request.headers):
            raise Forbidden("missing or wrong CSRF token")
        if session is not None and session.session_id:
            # Server-side: a copy of the cookie (another tab, a stolen one) is dead from now on.
            with transaction(admin.runtime.factory) as db:
                revoke_session(db, session_id=session.session_id)
        response = RedirectResponse("/admin/login", status_code=303)
        admin.codec.clear(response)
        return response

    @r.post("/language")
    async def language(request: Request) -> Response:
        # Every role may choose the language of its own pages (the one change a viewer makes).
        form = await request.form()
        if not csrf_ok(admin.codec.read(request), form, request.headers):
            raise Forbidden("missing or wrong CSRF token")
        viewer = admin.viewer(request)
        chosen = str(form.get("language", ""))
        if chosen not in LANGUAGES:
            raise Forbidden("unknown language %(language)r", language=chosen)
        with transaction(admin.runtime.factory) as db:
            update_user(db, user_id=viewer.id, language=chosen)
        return RedirectResponse(_page_to_show(request, str(form.get("next", ""))), status_code=303)

    return r
