"""How every recipient page is rendered: language choice, the sender's identity, no-store and anti-framing headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from sendwell.config import Settings
from sendwell.i18n import SUPPORTED, choose_language, normalise_language
from sendwell.optout.mail import gettext_for
from sendwell.runtime import Runtime

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent.with_name("templates")))
# A recipient page acts on a signed link: framed by another site, a click there could unsubscribe
# (or resubscribe) someone without their knowing (clickjacking). Every answer forbids framing.
NO_FRAMING = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}
PAGE_HEADERS = {"Cache-Control": "no-store", **NO_FRAMING}
LANGUAGE_NAMES = {"en": "English", "zh_Hans": "简体中文", "de": "Deutsch", "fr": "Français", "es": "Español"}


def client_of(request: Request) -> tuple[str, str]:
    """The caller's IP and user agent, for the opt-out audit."""
    return (request.client.host if request.client else ""), request.headers.get("user-agent", "")


class RecipientPages:
    """Renders the recipient pages with the sender identity of a runtime's current settings."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def settings(self) -> Settings:
        """The runtime's settings now: an admin edit or a reload swaps in a new object."""
        return self.runtime.settings

    def language_of(self, request: Request, contact_language: str | None) -> str:
        """An explicit choice on the page first, then the contact's language, then the browser's."""
        chosen = normalise_language(request.query_params.get("lang"))
        return chosen or choose_language(contact_language, request.headers.get("accept-language"))

    def page(self, request: Request, name: str, lang: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        """One template in one language, never cached (it shows a person's state)."""
        settings = self.settings
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
                                          headers={**PAGE_HEADERS, "Content-Language": ctx["html_lang"]})

    def invalid(self, request: Request, status: int = 404, contact_language: str | None = None) -> HTMLResponse:
        """The "this link is not valid" page; nothing was changed."""
        return self.page(request, "invalid_link.html", self.language_of(request, contact_language), status=status)
