"""Render a campaign for one contact: sandboxed Jinja2, compiled once, plus the compliance footer."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import css_inline
from jinja2 import ChainableUndefined, StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from markupsafe import Markup

from sendwell.config import Settings
from sendwell.content import budget
from sendwell.content.blocks import AudienceBlocks
from sendwell.content.brand import Brand
from sendwell.content.footer import RecipientFacts, footer_html, footer_text, language_of

_CRLF = re.compile(r"[\r\n]+")
MAX_REPEAT = 100_000  # longest list a template may build with `*` (strings: the render budget)
MAX_POWER_BITS = 4096  # largest integer a template may build with `**` (CPU guard)
# Names a template may use; anything else is an unknown variable (lint) and an error at render.
KNOWN_VARIABLES = frozenset({
    "contact", "first_name", "last_name", "company", "sender", "region", "industry", "stage",
    "country", "language", "unsubscribe_url", "preferences_url", "keep_url", "range", "dict", "namespace",
})
# The fields of `contact.` (the recipient) and `sender.` (the identity in the settings).
CONTACT_FIELDS = frozenset({"first_name", "last_name", "company", "job_title", "industry", "country", "region",
                            "stage", "language", "email", "tags", "custom"})
SENDER_FIELDS = frozenset({"company", "address", "email", "phone", "website", "privacy_url"})
# Older top-level names that still render; the lint names what to write instead, because
# `company` is the sender's own company and was mistaken for the recipient's.
LEGACY_VARIABLES = {"first_name": "contact.first_name", "last_name": "contact.last_name",
                    "company": "sender.company"}


class _BudgetedTemplate(Template):
    """A compiled template whose every render runs inside a render budget (content/budget.py)."""

    @classmethod
    def _from_namespace(cls, environment: Any, namespace: Any, globals: Any) -> Any:
        # The generated code looks these up in its own module namespace: `~` and output
        # escaping then size what they build.
        namespace.update(markup_join=budget.markup_join, str_join=budget.str_join, escape=budget.checked_escape)
        return super()._from_namespace(environment, namespace, globals)


class _Formatter(budget.BudgetFormatter, SandboxedFormatter):
    pass


class _EscapeFormatter(budget.BudgetFormatter, SandboxedEscapeFormatter):
    pass


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, inside a render budget, and no helpers beyond range, dict, namespace."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    template_class = _BudgetedTemplate
    budget_loop = staticmethod(budget.loop)  # what every {% for %} iterates through (compile_template)

    def __init__(self, *, autoescape: bool, undefined: type[Undefined] = StrictUndefined) -> None:
        super().__init__(autoescape=autoescape, undefined=undefined, extensions=[AudienceBlocks])
        self.output_limit = budget.MAX_HTML_CHARS if autoescape else budget.MAX_TEXT_CHARS
        for name in ("lipsum", "cycler", "joiner"):  # nothing a mail needs; less to reach into
            self.globals.pop(name, None)
        self.filters = {name: budget.checked_filter(name, f) for name, f in self.filters.items()}

    def concat(self, parts: Any) -> str:
        """Every buffer join in the generated code; Template.render's join of its stream starts a budget."""
        return budget.concat(parts) if isinstance(parts, list) else budget.render(self.output_limit, parts)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget.step()
        text = getattr(__obj, "__self__", None)
        if isinstance(text, str) and isinstance(__obj, type(text.center)):
            if __obj.__name__ == "join" and args and not isinstance(args[0], (str, list, tuple)):
                args = (list(args[0]), *args[1:])  # sized below, so read the iterator once
            budget.check_str_method(__obj.__name__, text, args)
        rv = super().call(__context, __obj, *args, **kwargs)
        if isinstance(rv, str) and len(rv) > 64:
            budget.charge(len(rv))
        return rv

    def wrap_str_format(self, value: Any) -> Any:
        """str.format / format_map, with each field's width and precision inside the budget."""
        if super().wrap_str_format(value) is None:
            return None
        text = value.__self__
        formatter = _EscapeFormatter(self, escape=text.escape) if isinstance(text, Markup) else _Formatter(self)
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            return type(text)(formatter.vformat(text, args, kwargs))

        return wrapper

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja returns an Undefined that some filters (list, string) print as "Undefined";
        # refuse outright so every attribute walk fails loudly at render and in the lint.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * abs(right) > MAX_POWER_BITS:
                raise SecurityError("exponent too large in template")
            return operator.pow(left, right)
        if operator_ == "%":
            if isinstance(left, str):
                budget.check_percent(left, right)
                rv = operator.mod(left, right)
                budget.charge(len(rv))
                return rv
            return operator.mod(left, right)
        if operator_ == "+":
            if isinstance(left, str) and isinstance(right, str):
                budget.charge(len(left) + len(right))
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                budget.charge(budget.weight(left) + budget.weight(right))  # printed, it is that long
            return operator.add(left, right)
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                raise SecurityError(f"template tried to build a sequence longer than {MAX_REPEAT}")
            if isinstance(seq, (list, tuple)) and isinstance(n, int) and not isinstance(n, bool):
                budget.charge(budget.weight(seq) * max(n, 0))
            if isinstance(seq, str) and isinstance(n, int) and not isinstance(n, bool):
                budget.charge(len(seq) * max(n, 0))
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
        for loop in ast.find_all(nodes.For):
            # Every iteration counts against the render budget (the sandbox has no hook for loops).
            loop.iter = nodes.Call(nodes.EnvironmentAttribute("budget_loop"), [loop.iter], [], None, None,
                                   lineno=loop.lineno)
        return env.from_string(ast)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{what}: template syntax error on line {exc.lineno}: {exc.message}") from exc


# Whom the trial render at compile time renders for.
_STAND_IN = SimpleNamespace(
    id=0, email="sample@example.invalid", first_name="Sample", last_name="Recipient", company="Example Ltd",
    job_title="", industry="", country="", region="other", stage="prospect", language="en", tags=[], custom={})
_STAND_IN_LINKS = Links(unsubscribe="https://example.invalid/u", preferences="https://example.invalid/p",
                        keep="https://example.invalid/k")


class CompiledCampaign:
    """A campaign's subject, HTML and text compiled once; `render` is cheap per contact."""

    def __init__(self, *, subject: str, html: str, text: str, settings: Settings, kind: str = "marketing",
                 lenient: bool = False, brand: Brand | None = None) -> None:
        self._subject = compile_template(subject, html=False, what="subject", lenient=lenient)
        self._html = compile_template(html, html=True, what="html", lenient=lenient)
        self._text = compile_template(text, html=False, what="text", lenient=lenient) if text.strip() else None
        self._settings = settings
        self._marketing = kind != "transactional"
        self._brand = brand  # the brand layout around the content (content/brand.py); the footer stays last
        # Remote stylesheets are never fetched: rendering must not reach the network.
        self._inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)
        # Only a style sheet has anything to inline. Without one the inliner would just parse
        # and re-serialise every mail (~60 µs each); values from contacts are escaped, so no
        # recipient's data can add a <style> or <link> the template did not have.
        lowered = html.lower()
        self._inline = "<style" in lowered or "<link" in lowered
        self._trial_render()

    def _trial_render(self) -> None:
        """Render once for a stand-in contact so a template over its budget is refused when saved."""
        ctx = template_context(_STAND_IN, _STAND_IN_LINKS, self._settings)
        for what, template in (("subject", self._subject), ("html", self._html), ("text", self._text)):
            try:
                if template is not None:
                    template.render(ctx)
            except budget.BudgetExceeded as exc:
                raise TemplateError(f"{what}: {exc}") from exc
            except Exception:  # noqa: S110 - other errors depend on the contact: lint and render report them
                pass

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
        html = _with_footer(with_brand(body_html, self._brand, logo_alt=self._settings.company_name), footer)
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
        "sender": sender_fields(settings),
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


def sender_fields(settings: Settings) -> dict[str, str]:
    """`sender.*`: the identity every footer shows, for a template's own use."""
    return {"company": settings.company_name, "address": settings.postal_address, "email": settings.contact_email,
            "phone": settings.contact_phone, "website": settings.website, "privacy_url": settings.privacy_url}


_PARSER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def as_clients_parse(html: str) -> str:
    """The document as an HTML5 parser (html5ever, inside css-inline) reads it, re-serialised.

    What a mail client shows: an unclosed comment or element swallows what follows it. The
    lint checks this form, since mails without a style sheet are sent as written.
    """
    return _PARSER.inline(html)


def with_brand(body: str, brand: Brand | None, *, logo_alt: str = "") -> str:
    """The body inside the brand layout: its header first, its footer after the content."""
    if brand is None or brand.empty:
        return body
    header, footer = brand.header(logo_alt=logo_alt), brand.footer()
    lower = body.lower()
    opening = re.search(r"<body[^>]*>", lower)
    if "<html" not in lower or opening is None:
        return header + body + footer
    closing = lower.rfind("</body")
    end = closing if closing >= opening.end() else len(body)
    return body[:opening.end()] + header + body[opening.end():end] + footer + body[end:]


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
