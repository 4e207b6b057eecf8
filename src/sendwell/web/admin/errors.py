"""The admin's error pages: a browser gets 403, 404, 405 and 500 as a page in the admin's look and language."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sendwell.access.users import LANGUAGES
from sendwell.i18n import choose_language
from sendwell.web.admin.pages import Admin, Viewer

# status → (heading, explanation); the English text is the catalog's msgid.
PAGES = {
    404: ("Not found", "There is nothing here. It may have been deleted."),
    405: ("This page cannot be opened directly",
          "This address only takes a form's answer, so reloading or switching the language cannot show it again. "
          "Go back to the page and send the form again."),
    500: ("Something went wrong", "An unexpected error stopped this page; it has been logged. Try again in a moment."),
}


def is_admin_page_request(request: Request) -> bool:
    """A browser asking for an admin page (not htmx, not a script asking for JSON)."""
    return (request.url.path.startswith("/admin") and "text/html" in request.headers.get("accept", "")
            and not request.headers.get("hx-request"))


def viewer_or_none(admin: Admin, request: Request) -> Viewer | None:
    """The signed-in user when there is one; an error page must render even when this lookup fails."""
    try:
        return admin.viewer(request)
    except Exception:  # NotSignedIn, or the database is down behind a 500: show the page without a user
        return None


def page_language(request: Request, viewer: Viewer | None) -> str:
    """The user's own language, else the browser's (for pages before sign-in)."""
    if viewer is not None:
        return viewer.language
    chosen = choose_language(None, request.headers.get("accept-language"))
    return chosen if chosen in LANGUAGES else "en"


def error_page(admin: Admin, request: Request, status: int) -> Response:
    """The admin page for an error status (404 for a status without its own text)."""
    viewer = viewer_or_none(admin, request)
    heading, text = PAGES.get(status, PAGES[404])
    return admin.render(request, "error.html", viewer, status=status, language=page_language(request, viewer),
                        heading=heading, text=text, code=status)


def mount_error_pages(app: FastAPI, admin: Admin) -> None:
    """Admin pages for HTTP errors and unexpected failures; everything else keeps Starlette's answers."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_admin_page_request(request) and exc.status_code in PAGES:
            response = error_page(admin, request, exc.status_code)
            if exc.headers:  # e.g. 405's Allow
                response.headers.update(exc.headers)
            return response
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def server_error(request: Request, _exc: Exception) -> Response:
        # Starlette re-raises the exception after this answer, so the server still logs it.
        if is_admin_page_request(request):
            return error_page(admin, request, 500)
        return PlainTextResponse("Internal Server Error", status_code=500)
