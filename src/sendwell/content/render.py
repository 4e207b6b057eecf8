"""Render a campaign for one contact: sandboxed Jinja2, compiled once, plus the compliance footer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import css_inline
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sendwell.config import Settings

_html_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
_text_env = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
_CRLF = re.compile(r"[\r\n]+")


class TemplateError(ValueError):
    """A campaign template cannot be compiled or rendered."""


@dataclass(frozen=True)
class Links:
    unsubscribe: str  # the one-click / page URL (https in production)
    preferences: str


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


class CompiledCampaign:
    """A campaign's subject, HTML and text compiled once; `render` is cheap per contact."""

    def __init__(self, *, subject: str, html: str, text: str, settings: Settings) -> None:
        try:
            self._subject = _text_env.from_string(subject)
            self._html = _html_env.from_string(html)
            self._text = _text_env.from_string(text) if text.strip() else None
        except TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc
        self._settings = settings
        self._inliner = css_inline.CSSInliner(keep_style_tags=False)

    def render(self, contact: Any, links: Links) -> Rendered:
        """Subject, HTML and text for one contact, with footer and unsubscribe link in both bodies."""
        ctx = template_context(contact, links, self._settings)
        try:
            # Header injection guard: a name with CR/LF must never start a new header line.
            subject = _CRLF.sub(" ", self._subject.render(ctx)).strip()
            body_html = self._html.render(ctx)
            body_text = self._text.render(ctx) if self._text is not None else html_to_text(body_html)
        except Exception as exc:  # jinja's UndefinedError and sandbox SecurityError
            raise TemplateError(f"cannot render for contact {getattr(contact, 'id', '?')}: {exc}") from exc
        html = self._inliner.inline(_wrap_html(body_html + footer_html(contact, links, self._settings)))
        text = body_text.rstrip() + "\n\n" + footer_text(contact, links, self._settings)
        return Rendered(subject=subject, html=html, text=text)


def template_context(contact: Any, links: Links, settings: Settings) -> dict[str, Any]:
    """What a template may use."""
    return {
        "contact": {
            "first_name": contact.first_name or "",
            "last_name": contact.last_name or "",
            "company": contact.company or "",
            "job_title": contact.job_title or "",
            "industry": contact.industry or "",
            "country": contact.country or "",
            "region": contact.region or "other",
            "stage": contact.stage,
            "language": contact.language or "en",
            "email": contact.email,
        },
        "first_name": contact.first_name or "",
        "company": settings.company_name,
        "unsubscribe_url": links.unsubscribe,
        "preferences_url": links.preferences,
    }


def footer_html(contact: Any, links: Links, settings: Settings) -> str:
    """The compliance footer (identity, postal address, contact, unsubscribe; EU data notice)."""
    from markupsafe import escape

    contact_bits = [escape(settings.contact_email)]
    if settings.contact_phone:
        contact_bits.append(escape(settings.contact_phone))
    if settings.website:
        contact_bits.append(f'<a href="{escape(settings.website)}">{escape(settings.website)}</a>')
    lines = [
        f"<strong>{escape(settings.company_name)}</strong>, {escape(settings.postal_address)}",
        " · ".join(str(b) for b in contact_bits),
        f'You receive this because you are in contact with {escape(settings.company_name)}. '
        f'<a href="{escape(links.unsubscribe)}">Unsubscribe</a> · '
        f'<a href="{escape(links.preferences)}">Choose how often we write</a>',
    ]
    if contact.region in ("eu", "uk"):
        notice = (
            f"{escape(settings.company_name)} is the controller of your data and uses your business "
            "contact details only to send you these mails."
        )
        if settings.privacy_url:
            notice += f' <a href="{escape(settings.privacy_url)}">Privacy notice</a>.'
        if getattr(contact, "source", ""):
            notice += f" Source of your data: {escape(contact.source)}."
        lines.append(notice)
    inner = "".join(f"<p style=\"margin:4px 0\">{line}</p>" for line in lines)
    return (
        '<div class="sendwell-footer" style="margin-top:24px;padding-top:12px;'
        'border-top:1px solid #ddd;color:#666;font-size:12px">' + inner + "</div>"
    )


def footer_text(contact: Any, links: Links, settings: Settings) -> str:
    """The compliance footer for the plain-text part."""
    parts = [
        "--",
        f"{settings.company_name}, {settings.postal_address}",
        " / ".join(x for x in (settings.contact_email, settings.contact_phone, settings.website) if x),
        f"Unsubscribe: {links.unsubscribe}",
        f"Choose how often we write: {links.preferences}",
    ]
    if contact.region in ("eu", "uk"):
        notice = f"{settings.company_name} is the controller of your data."
        if settings.privacy_url:
            notice += f" Privacy notice: {settings.privacy_url}"
        if getattr(contact, "source", ""):
            notice += f" Source of your data: {contact.source}."
        parts.append(notice)
    return "\n".join(parts) + "\n"


def _wrap_html(body: str) -> str:
    if "<html" in body.lower():
        return body
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width"></head>'
        f'<body style="font-family:Arial,Helvetica,sans-serif;line-height:1.5;color:#222">{body}</body></html>'
    )


class _TextExtractor(HTMLParser):
    # The stdlib parser is enough for our own templates; html2text and friends are GPL.
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: str | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self._skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self._skip = max(0, self._skip - 1)
        if tag == "a" and self._href:
            self.parts.append(f" ({self._href})")
            self._href = None
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML body."""
    parser = _TextExtractor()
    parser.feed(html)
    text = "".join(parser.parts)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
