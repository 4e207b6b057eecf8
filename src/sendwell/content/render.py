"""Render a campaign for one contact: sandboxed Jinja2, compiled once, plus the compliance footer."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import css_inline
from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sendwell.config import Settings
from sendwell.content.blocks import AudienceBlocks
from sendwell.content.footer import RecipientFacts, footer_html, footer_text, language_of

_CRLF = re.compile(r"[\r\n]+")
MAX_REPEAT = 100_000  # longest string / list a template may build with `*` (memory guard)
MAX_POWER_BITS = 4096  # largest integer a template may build with `**` (CPU guard)
# Names a template may use; anything else is an unknown variable (lint) and an error at render.
KNOWN_VARIABLES = frozenset({
    "contact", "first_name", "last_name", "company", "sender", "region", "industry", "stage",
    "country", "language", "unsubscribe_url", "preferences_url", "keep_url", "range", "dict", "namespace",
})


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with `*` / `**` size-checked and no helpers beyond range, dict, namespace."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *, autoescape: bool, undefined: type[Undefined] = StrictUndefined) -> None:
        super().__init__(autoescape=autoescape, undefined=undefined, extensions=[AudienceBlocks])
        for name in ("lipsum", "cycler", "joiner"):  # nothing a mail needs; less to reach into
            self.globals.pop(name, None)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja returns an Undefined that some filters (list, string) print as "Undefined";
        # refuse outright so every attribute walk fails loudly at render and in the lint.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * abs(right) > MAX_POWER_BITS:
                raise SecurityError("exponent too large in template")
            return operator.pow(left, right)
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                raise SecurityError(f"template tried to build a sequence longer than {MAX_REPEAT}")
        return operator.mul(left, right)


# The sandboxes templates render in; the lint parses with the same ones.
HTML_ENV = _Sandbox(autoescape=True)
TEXT_ENV = _Sandbox(autoescape=False)
# Lenient twins, for the lint only: after reporting an unknown variable it still renders the
# rest (empty for what is unknown) so the footer and layout checks can run in the same pass.
_lenient_envs = {True: _Sandbox(autoescape=True, undefined=ChainableUndefined),
                 False: _Sandbox(autoescape=False, undefined=ChainableUndefined)}


class TemplateError(ValueError):
    """A campaign template cannot be compiled or rendered."""


@dataclass(frozen=True)
class Links:
    unsubscribe: str  # the one-click / page URL (https in production)
    preferences: str
    keep: str = ""  # reconfirmation mail only: the "keep me subscribed" page (docs/hygiene.md)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str  # final HTML: body + system footer, CSS inlined
    text: str  # final text: body (given or derived) + system footer
    body_html: str = ""  # the template's own output, before footer and inlining
    body_text: str = ""


_FORBIDDEN_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def compile_template(source: str, *, html: bool, what: str, lenient: bool = False) -> Any:
    """Parse and compile one template in the sandbox; TemplateError names the line."""
    env = _lenient_envs[html] if lenient else (HTML_ENV if html else TEXT_ENV)
    try:
        ast = env.parse(source)
        for node in ast.find_all(_FORBIDDEN_NODES):
            # No loader exists anyway; say so at compile time rather than per contact.
            raise TemplateError(f"{what}: line {node.lineno}: include, import and extends are not allowed")
        for name in ast.find_all(nodes.Name):
            if name.name == "self":  # the template's own reference: a mail has no use for it
                raise TemplateError(f"{what}: line {name.lineno}: 'self' is not available in mail templates")
        return env.from_string(ast)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{what}: template syntax error on line {exc.lineno}: {exc.message}") from exc


class CompiledCampaign:
    """A campaign's subject, HTML and text compiled once; `render` is cheap per contact."""

    def __init__(self, *, subject: str, html: str, text: str, settings: Settings, kind: str = "marketing",
                 lenient: bool = False) -> None:
        self._subject = compile_template(subject, html=False, what="subject", lenient=lenient)
        self._html = compile_template(html, html=True, what="html", lenient=lenient)
        self._text = compile_template(text, html=False, what="text", lenient=lenient) if text.strip() else None
        self._settings = settings
        self._marketing = kind != "transactional"
        # Remote stylesheets are never fetched: rendering must not reach the network.
        self._inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)
        # Only a style sheet has anything to inline. Without one the inliner would just parse
        # and re-serialise every mail (~60 µs each); values from contacts are escaped, so no
        # recipient's data can add a <style> or <link> the template did not have.
        lowered = html.lower()
        self._inline = "<style" in lowered or "<link" in lowered

    def render(self, contact: Any, links: Links, facts: RecipientFacts | None = None) -> Rendered:
        """Subject, HTML and text for one contact, with footer and unsubscribe link in both bodies."""
        facts = facts or RecipientFacts(data_source=getattr(contact, "source", "") or "")
        ctx = template_context(contact, links, self._settings)
        try:
            # Header injection guard: a name with CR/LF must never start a new header line.
            subject = _CRLF.sub(" ", self._subject.render(ctx)).strip()
            body_html = self._html.render(ctx)
            body_text = self._text.render(ctx) if self._text is not None else html_to_text(body_html)
        except Exception as exc:  # jinja's UndefinedError and sandbox SecurityError
            raise TemplateError(f"cannot render for contact {getattr(contact, 'id', '?')}: {exc}") from exc
        footer = footer_html(contact, links, self._settings, facts, marketing=self._marketing)
        html = _with_footer(body_html, footer)
        if self._inline:
            html = self._inliner.inline(html)
        text = body_text.rstrip() + "\n\n" + footer_text(contact, links, self._settings, facts, marketing=self._marketing)
        return Rendered(subject=subject, html=html, text=text, body_html=body_html, body_text=body_text)


def _plain(value: Any) -> str | int | float | bool | None:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def template_context(contact: Any, links: Links, settings: Settings) -> dict[str, Any]:
    """What a template may use: plain data only, never ORM objects."""
    region = getattr(contact, "region", "") or "other"
    custom = getattr(contact, "custom", None) or {}
    person = {
        "first_name": contact.first_name or "",
        "last_name": contact.last_name or "",
        "company": contact.company or "",
        "job_title": getattr(contact, "job_title", "") or "",
        "industry": contact.industry or "",
        "country": contact.country or "",
        "region": region,
        "stage": contact.stage,
        "language": contact.language or "en",
        "email": contact.email,
        "tags": [str(t) for t in (getattr(contact, "tags", None) or [])],
        "custom": {str(k): _plain(v) for k, v in custom.items()} if isinstance(custom, dict) else {},
    }
    return {
        "contact": person,
        "first_name": person["first_name"],
        "last_name": person["last_name"],
        "company": settings.company_name,  # the sender's company (kept for older templates)
        "sender": {
            "company": settings.company_name,
            "email": settings.contact_email,
            "phone": settings.contact_phone,
            "website": settings.website,
        },
        # Top-level audience values, what {% region %} / {% industry %} / … blocks compare with.
        "region": region,
        "industry": (contact.industry or "").casefold(),
        "stage": contact.stage or "",
        "country": (contact.country or "").upper(),
        "language": language_of(contact.language),
        "unsubscribe_url": links.unsubscribe,
        "preferences_url": links.preferences,
        "keep_url": links.keep,
    }


_PARSER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def as_clients_parse(html: str) -> str:
    """The document as an HTML5 parser (html5ever, inside css-inline) reads it, re-serialised.

    What a mail client shows: an unclosed comment or element swallows what follows it. The
    lint checks this form, since mails without a style sheet are sent as written.
    """
    return _PARSER.inline(html)


def _with_footer(body: str, footer: str) -> str:
    """The body wrapped in a document, with the footer last inside <body>."""
    lower = body.lower()
    if "<html" not in lower:
        return _wrap_html(body + footer)
    at = lower.rfind("</body")
    return body[:at] + footer + body[at:] if at >= 0 else body + footer


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
