"""What every admin view shares: who is signed in, the role and CSRF checks, and rendering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from sendwell.access.sessions import session_live
from sendwell.access.users import LANGUAGES, get_user
from sendwell.db.session import transaction
from sendwell.i18n import translations
from sendwell.runtime import Runtime
import sendwell.web.admin.labels as labels
from sendwell.web.admin.auth import CSRF_FIELD, Forbidden, NotSignedIn, SessionCodec, allows, csrf_ok, fingerprint
from sendwell.web.admin.localized import finding_text, localized

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html
LANGUAGE_NAMES = {"en": "English", "zh_Hans": "简体中文"}
# Scripts only from our own origin (htmx, uPlot, admin.js are vendored); inline styles are
# allowed because the campaign preview shows real mail HTML, which carries inline CSS.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as the views need it (no database object outlives its session)."""

    id: int
    email: str
    role: str
    language: str
    csrf: str

    def can(self, needed: str) -> bool:
        return allows(self.role, needed)


def gettext_for(language: str):  # type: ignore[no-untyped-def]
    """`_(msgid, **values)` over the `admin` catalog."""
    catalog = translations(language if language in LANGUAGES else "en", "admin")

    def _(message: str, **values: object) -> str:
        if not message:
            return ""  # gettext("") is the catalog's header, never something to show
        text = catalog.gettext(message)
        return text % values if values else text

    return _


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


TEMPLATES.env.filters["percent"] = percent
TEMPLATES.env.filters["localized"] = localized
TEMPLATES.env.filters["finding_text"] = finding_text
TEMPLATES.env.filters.update(labels.filters())


class Admin:
    """The admin's shared machinery over one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.codec = SessionCodec(runtime.settings.secret_keys, secure=runtime.settings.base_url.startswith("https:"))

    def viewer(self, request: Request) -> Viewer:
        """The signed-in user; NotSignedIn when there is no valid session."""
        session = self.codec.read(request)
        if session is None or session.user_id is None:
            raise NotSignedIn()
        with transaction(self.runtime.factory) as db:
            user = get_user(db, user_id=session.user_id)
            if (user is None or fingerprint(user) != session.fingerprint
                    or not session_live(db, session_id=session.session_id, user_id=user.id)):
                raise NotSignedIn()
            return Viewer(user.id, user.email, user.role, user.language, session.csrf)

    async def require(self, request: Request, needed: str = "viewer") -> Viewer:
        """The signed-in user with at least this role; POSTs must also carry the CSRF token."""
        if request.method == "POST":
            form = await request.form()
            if not csrf_ok(self.codec.read(request), form, request.headers):
                raise Forbidden("missing or wrong CSRF token: reload the page and try again")
        viewer = self.viewer(request)
        if request.method == "POST" and needed == "viewer":
            needed = "marketer"  # a viewer reads; every change needs at least a marketer
        if not viewer.can(needed):
            raise Forbidden("your role (%(role)s) does not allow this; it needs %(needed)s", role=viewer.role, needed=needed)
        return viewer

    def render(self, request: Request, template: str, viewer: Viewer | None, *, status: int = 200,
               language: str | None = None, csrf: str | None = None, **ctx: Any) -> HTMLResponse:
        lang = language or (viewer.language if viewer else "en")
        ctx.update(
            _=gettext_for(lang), lang=lang, html_lang=lang.replace("_", "-"), user=viewer,
            csrf=csrf or (viewer.csrf if viewer else ""), csrf_field=CSRF_FIELD, path=request.url.path,
            languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
            company=self.runtime.settings.company_name,
        )
        return TEMPLATES.TemplateResponse(request, template, ctx, status_code=status, headers=security_headers())


def security_headers() -> dict[str, str]:
    return {"Cache-Control": "no-store", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}
