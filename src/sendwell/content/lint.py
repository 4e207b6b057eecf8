"""Compliance lint (errors: the campaign cannot be sent) and readability lint (warnings).

Every compliance finding names its row in COMPLIANCE.md's checklist. The checks run on the
settings, on the templates' source (static analysis), and on what recipients would really
get: the rendered, CSS-inlined message with the system footer, one sample per region and
language of the campaign's audience.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jinja2 import TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError

from sendwell.config import Settings
from sendwell.content.budget import BudgetExceeded
from sendwell.content.render import (
    CONTACT_FIELDS,
    HTML_ENV,
    KNOWN_VARIABLES,
    LEGACY_VARIABLES,
    SENDER_FIELDS,
    TEXT_ENV,
    Links,
    Rendered,
    TemplateError,
    as_clients_parse,
    html_to_text,
    template_context,
)
from sendwell.content.visibility import footer_hidden_reason, link_visibility, parse_html

ERROR = "error"
WARNING = "warning"

# ---- thresholds (the seed's guidance: short, value first) --------------------------------
MAX_PARAGRAPHS = 5
MAX_LINES_PER_PARAGRAPH = 3
LINE_COLUMNS = 80  # one "line" = 80 columns of rendered text; CJK characters take two
MAX_SUBJECT_CHARS = 60
MAX_HTML_BYTES = 100 * 1024  # Gmail clips a message whose HTML passes ~102 KB
MIN_TEXT_PER_IMAGE = 300  # characters of text per image below which a mail is image-heavy

# Subjects that pretend to continue a conversation (COMPLIANCE row 16): reply and forward
# prefixes in English, German, French, Spanish, Italian, Nordic and Chinese mail clients,
# followed by a colon (`Re:`, `回复：`) or in brackets on their own (`[Re]`, `(Fwd)`, `【转发】`).
_REPLY_WORDS = r"(?:re|fw|fwd|aw|wg|tr|rv|r|res|enc|sv|vs|antw|回复|回覆|答复|转发|轉寄|转寄|轉發)"
_COUNTER = r"(?:\[\d+\]|\(\d+\))?"
DECEPTIVE_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:" + _REPLY_WORDS + r"\s*" + _COUNTER + r"\s*[:：]"
    r"|[\[(【（]\s*" + _REPLY_WORDS + r"\s*" + _COUNTER + r"\s*[:：]?\s*[\])】）])",
    re.IGNORECASE,
)

# Words that make a "transactional" mail read as promotion (COMPLIANCE row 16: transactional
# mail carries no advertisement notice and skips consent, caps and pauses). CAN-SPAM's
# primary-purpose test (16 CFR 316.3): a mail that sells is commercial, whatever its label.
PROMOTIONAL_WORDS = {
    "en": ["offer", "discount", "sale", "promotion", "promo", "deal", "coupon", "voucher", "new product",
           "new arrival", "new range", "new collection", "catalogue", "catalog", "price list", "buy", "order now",
           "shop now", "free shipping", "limited time", "special price", "best price", "% off"],
    "zh_Hans": ["优惠", "折扣", "打折", "促销", "特价", "特惠", "新品", "新产品", "新款", "上新", "报价", "价格",
                "价目表", "购买", "订购", "下单", "抢购", "限时", "包邮", "优惠券"],
}
# A price: a currency sign or code next to a number ("$12", "12 USD", "¥ 80", "80元").
_PRICE = re.compile(r"(?:[$€£¥￥]|\b(?:usd|eur|gbp|rmb|cny)\b)\s?\d|\d\s?(?:[€元]|\b(?:usd|eur|gbp|rmb|cny)\b)",
                    re.IGNORECASE)
# Names and addresses that read like a placeholder, and domains that can receive no mail
# (RFC 2606 / RFC 6761: example.com/.net/.org, .example, .test, .invalid, .localhost).
_PLACEHOLDER_WORDS = re.compile(
    r"(?<![\w-])(?:example|demo|sample|placeholder|lorem ipsum|your company|company name|acme|"
    r"123 main st(?:reet)?)(?![\w-])",
    re.IGNORECASE,
)
RESERVED_ADDRESS_ENDINGS = ("@example.com", ".example.com", "@example.net", ".example.net", "@example.org",
                           ".example.org", ".example", ".test", ".invalid", ".localhost")
# Reserved domains for the sender's own addresses; `.example` is left to the DNS checks (row 23),
# since an invented but realistic sender (the demo's, the tests') is no placeholder text.
_PLACEHOLDER_DOMAIN = re.compile(r"(?:^|\.)(?:example\.(?:com|net|org)|test|invalid|localhost)\.?$",
                                 re.IGNORECASE)

# Phrases spam filters and wary buyers react to; warnings only, in the five languages.
SPAM_PHRASES = {
    "en": ["act now", "100% free", "free money", "risk-free", "risk free", "guaranteed", "click here",
           "limited time", "buy now", "order now", "winner", "urgent", "no obligation", "cash bonus",
           "lowest price", "once in a lifetime", "earn money", "double your", "call now", "this is not spam",
           "apply now", "special promotion", "100% satisfied", "$$$"],
    "de": ["jetzt kaufen", "gratis", "kostenlos", "gewinner", "sofort handeln", "nur heute", "garantiert",
           "klicken sie hier", "risikofrei", "geld verdienen", "einmalige gelegenheit"],
    "fr": ["gratuit", "cliquez ici", "achetez maintenant", "offre limitée", "gagnant", "sans risque",
           "argent facile", "meilleur prix", "satisfait ou remboursé", "agissez maintenant"],
    "es": ["gratis", "haga clic aquí", "haz clic aquí", "compre ahora", "oferta limitada", "ganador",
           "sin riesgo", "urgente", "dinero fácil", "mejor precio", "actúe ahora"],
    "zh_Hans": ["免费", "点击这里", "立即购买", "限时", "中奖", "赚钱", "最低价", "保证", "马上行动",
                "无风险", "恭喜", "特价"],
}


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    if any(unicodedata.east_asian_width(c) in "WF" for c in phrase) or not phrase[0].isalnum():
        return re.compile(re.escape(phrase), re.IGNORECASE)
    # Whole words, allowing plural / inflected endings ("gratuits", "winners", "urgentes").
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?:s|es|e|n|en)?(?!\w)", re.IGNORECASE)


_SPAM = [(phrase, _phrase_pattern(phrase)) for phrases in SPAM_PHRASES.values() for phrase in phrases]


@dataclass(frozen=True)
class Finding:
    """One lint result; `rule` is the COMPLIANCE.md checklist row of a compliance finding.

    `template` is the English message with `%(name)s` placeholders and `params` their
    values, so the admin can translate the template and then format it.
    """

    code: str
    severity: str
    template: str
    rule: int | None = None
    samples: tuple[str, ...] = ()
    # Findings with the same code and key are one finding across samples (personalisation
    # changes the numbers in a message, not the problem); None = the message is the key.
    key: str | None = field(default=None, compare=False, repr=False)
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def message(self) -> str:
        """The English text: the template with its values."""
        return self.template % dict(self.params) if self.params else self.template

    @property
    def blocking(self) -> bool:
        return self.severity == ERROR

    def line(self) -> str:
        """`error [COMPLIANCE #15] postal-address: …` — one line for a terminal or a log."""
        ref = f" [COMPLIANCE #{self.rule}]" if self.rule else ""
        where = f" (samples: {', '.join(self.samples)})" if self.samples else ""
        return f"{self.severity}{ref} {self.code}: {self.message}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "rule": self.rule, "message": self.message,
                "template": self.template, "params": dict(self.params), "samples": list(self.samples)}


@dataclass
class LintReport:
    """All findings for one campaign, merged across samples."""

    campaign_id: int | None = None
    samples: list[str] = field(default_factory=list)  # region/language labels rendered
    findings: list[Finding] = field(default_factory=list)
    rendered: int = 0  # how many sample recipients were rendered

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.blocking]

    @property
    def ok(self) -> bool:
        """True when nothing blocks sending (warnings allowed)."""
        return not self.errors

    def lines(self) -> list[str]:
        return [f.line() for f in self.findings]

    def as_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "ok": self.ok, "errors": len(self.errors),
                "warnings": len(self.warnings), "samples": self.samples, "rendered": self.rendered,
                "findings": [f.as_dict() for f in self.findings]}


def merge(findings: list[tuple[Finding, str | None]]) -> list[Finding]:
    """One finding per (code, message), listing the samples it came from; errors first."""
    merged: dict[tuple[str, str], tuple[Finding, list[str]]] = {}
    for finding, sample in findings:
        key = (finding.code, finding.message if finding.key is None else finding.key)
        if key not in merged:
            merged[key] = (finding, [])
        if sample and sample not in merged[key][1]:
            merged[key][1].append(sample)
    out = [Finding(f.code, f.severity, f.template, f.rule, tuple(samples), params=f.params)
           for f, samples in merged.values()]
    return sorted(out, key=lambda f: (f.severity != ERROR, f.rule or 99))


# ---- settings ------------------------------------------------------------------------
def lint_settings(settings: Settings, *, regions: set[str] | None = None, kind: str = "marketing",
                  real_recipients: bool = True) -> list[Finding]:
    """Sender identity, postal address, contact details (row 15), base URL (row 2) and DKIM (row 23).

    `real_recipients`: whether the audience has an address outside the reserved test domains.
    """
    found: list[Finding] = []
    name, address = parseaddr(settings.from_)
    if "@" not in address or not address.rpartition("@")[2]:
        found.append(Finding("sender-identity", ERROR, "SENDWELL_FROM %(value)r has no valid address", 15,
                             params={"value": settings.from_}))
    if not settings.company_name.strip():
        found.append(Finding("sender-identity", ERROR, "SENDWELL_COMPANY_NAME is empty: every mail must name the sender", 15))
    if not settings.postal_address.strip():
        found.append(Finding("postal-address", ERROR,
                             "SENDWELL_POSTAL_ADDRESS is empty: a valid postal address is required in every mail", 15))
    elif not re.search(r"\d", settings.postal_address):
        found.append(Finding("postal-address", WARNING,
                             "SENDWELL_POSTAL_ADDRESS has no number (street, PO box or postcode): is it complete?", 15))
    if not any(x.strip() for x in (settings.contact_email, settings.contact_phone, settings.website)):
        found.append(Finding("contact-details", ERROR,
                             "no SENDWELL_CONTACT_EMAIL, _PHONE or SENDWELL_WEBSITE: CASL needs one besides the address", 15))
    found.extend(_lint_placeholder_identity(settings, real_recipients))
    found.extend(_lint_base_url(settings, kind))
    found.extend(_lint_dkim(settings, address))
    if regions and regions & {"eu", "uk"} and not settings.privacy_url:
        found.append(Finding("privacy-notice", WARNING,
                             "SENDWELL_PRIVACY_URL is empty: EU/UK mails say the notice is available on request "
                             "(GDPR Art 13/14 expect a link)", None))
    return found


_IDENTITY_SETTINGS = {"from_": "SENDWELL_FROM", "company_name": "SENDWELL_COMPANY_NAME",
                      "postal_address": "SENDWELL_POSTAL_ADDRESS", "contact_email": "SENDWELL_CONTACT_EMAIL",
                      "contact_phone": "SENDWELL_CONTACT_PHONE", "website": "SENDWELL_WEBSITE"}


def _domain(value: str) -> str:
    value = value.strip()
    if "@" in value:
        return parseaddr(value)[1].rpartition("@")[2]
    return urlsplit(value if "//" in value else f"//{value}").hostname or ""


def placeholder_settings(settings: Settings) -> list[str]:
    """The identity settings that hold the built-in default or a placeholder (example, demo, …)."""
    out = []
    for attr, env_name in _IDENTITY_SETTINGS.items():
        value = str(getattr(settings, attr) or "")
        if not value.strip():
            continue
        words = parseaddr(value)[0] if attr == "from_" else value if attr in ("company_name", "postal_address") else ""
        domain = _domain(value) if attr in ("from_", "contact_email", "website") else ""
        if (value == Settings.model_fields[attr].default or _PLACEHOLDER_WORDS.search(words)
                or (domain and _PLACEHOLDER_DOMAIN.search(domain))):
            out.append(env_name)
    return out


def _lint_placeholder_identity(settings: Settings, real_recipients: bool) -> list[Finding]:
    """The built-in demo identity, or an example one, must never reach a real inbox (row 15)."""
    names = placeholder_settings(settings)
    if not names:
        return []
    params = {"settings": ", ".join(names)}
    if settings.smtp_url == "capture" or not real_recipients:
        # Nothing reaches a person: mail is captured, or the audience is at reserved test domains only.
        return [Finding("sender-placeholder", WARNING,
                        "the sender identity is a placeholder (%(settings)s); fine while no mail reaches a person "
                        "(capture mode, test addresses), but set your real company, postal address and contact "
                        "details before sending", 15,
                        params=params)]
    return [Finding("sender-placeholder", ERROR,
                    "the sender identity is a placeholder (%(settings)s): set your real company name, postal "
                    "address and contact details", 15, params=params)]


def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _lint_base_url(settings: Settings, kind: str) -> list[Finding]:
    """RFC 8058 §3.1: the one-click URI must be https; loopback is a local trial, not a send."""
    parts = urlsplit(settings.base_url)
    if parts.scheme == "https":
        return []
    params = {"url": settings.base_url}
    if _is_loopback(parts.hostname or "") or kind == "transactional":
        return [Finding("base-url-http", WARNING,
                        "SENDWELL_BASE_URL %(url)s is not https: receivers ignore a one-click unsubscribe URL "
                        "that is not https (RFC 8058); use https before sending for real", 2, params=params)]
    return [Finding("base-url-http", ERROR,
                    "SENDWELL_BASE_URL %(url)s is not https: one-click unsubscribe needs an https URL (RFC 8058)",
                    2, params=params)]


def _lint_dkim(settings: Settings, from_address: str) -> list[Finding]:
    if not (settings.dkim_domain and settings.dkim_key_file):
        return [Finding("dkim-missing", ERROR,
                        "no DKIM key configured (SENDWELL_DKIM_DOMAIN / _KEY_FILE): run `sendwell dkim keygen`", 23)]
    found: list[Finding] = []
    from_domain = from_address.rpartition("@")[2].lower().rstrip(".")
    dkim_domain = settings.dkim_domain.lower().rstrip(".")
    if from_domain and not aligned(from_domain, dkim_domain):
        found.append(Finding("dkim-alignment", ERROR,
                             "From domain %(from_domain)s is not aligned with the DKIM domain %(dkim_domain)s (DMARC)",
                             23, params={"from_domain": from_domain, "dkim_domain": dkim_domain}))
    try:
        key = load_pem_private_key(Path(settings.dkim_key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return found + [Finding("dkim-missing", ERROR, "cannot read the DKIM key %(path)s: %(error)s", 23,
                                params={"path": settings.dkim_key_file, "error": str(exc)})]
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            found.append(Finding("dkim-key-size", ERROR, "DKIM key is RSA-%(bits)s; receivers need ≥ 1024", 23,
                                 params={"bits": key.key_size}))
        elif key.key_size < 2048:
            found.append(Finding("dkim-key-size", WARNING, "DKIM key is RSA-%(bits)s; use 2048", 23,
                                 params={"bits": key.key_size}))
    return found


def aligned(from_domain: str, dkim_domain: str) -> bool:
    """DMARC relaxed alignment, conservatively: one domain equals or is a subdomain of the other.

    Without the public suffix list, sibling subdomains (news.x.com vs mail.x.com) are
    reported as unaligned; sign with the parent domain to be aligned everywhere.
    """
    return from_domain == dkim_domain or from_domain.endswith("." + dkim_domain) or dkim_domain.endswith(
        "." + from_domain
    )


# ---- templates (static) ----------------------------------------------------------------
_DICT_METHODS = frozenset({"items", "keys", "values", "get"})


def _parsed(subject: str, html: str, text: str) -> list[tuple[str, nodes.Template | TemplateSyntaxError]]:
    """Each non-empty template parsed as the sandbox parses it, or its syntax error."""
    out: list[tuple[str, nodes.Template | TemplateSyntaxError]] = []
    for what, source, env in (("subject", subject, TEXT_ENV), ("html", html, HTML_ENV), ("text", text, TEXT_ENV)):
        if not source.strip():
            continue
        try:
            out.append((what, env.parse(source)))
        except TemplateSyntaxError as exc:
            out.append((what, exc))
    return out


def lint_templates(*, subject: str, html: str, text: str) -> list[Finding]:
    """Syntax, unknown and older variables (jinja2.meta), and a deceptive subject, from the source."""
    found: list[Finding] = []
    for what, ast in _parsed(subject, html, text):
        if isinstance(ast, TemplateSyntaxError):
            found.append(Finding("template-syntax", ERROR, "%(part)s: line %(line)s: %(error)s", 24,
                                 params={"part": what, "line": ast.lineno, "error": ast.message}))
            continue
        for name in sorted(meta.find_undeclared_variables(ast) - KNOWN_VARIABLES):
            found.append(Finding("unknown-variable", ERROR, "%(part)s: unknown template variable %(name)r", 24,
                                 params={"part": what, "name": name}))
        for base, attr, lineno in _attribute_uses(ast):
            allowed = CONTACT_FIELDS if base == "contact" else SENDER_FIELDS
            if attr not in allowed and attr not in _DICT_METHODS:
                found.append(Finding("unknown-variable", ERROR,
                                     "%(part)s: line %(line)s: %(base)s has no field %(name)r (known: %(known)s)", 24,
                                     params={"part": what, "line": lineno, "base": base, "name": attr,
                                             "known": ", ".join(sorted(allowed))}))
        found.extend(_legacy_uses(what, ast))
    if DECEPTIVE_SUBJECT.search(subject):
        found.append(_deceptive(subject))
    return found


def _legacy_uses(what: str, ast: nodes.Template) -> list[Finding]:
    """Each use of an older top-level name, with the name to write instead."""
    found = []
    for node in ast.find_all(nodes.Name):
        if node.ctx != "load" or node.name not in LEGACY_VARIABLES:
            continue
        params = {"part": what, "line": node.lineno, "name": node.name, "new": LEGACY_VARIABLES[node.name]}
        if node.name == "company":
            found.append(Finding("legacy-variable", WARNING,
                                 "%(part)s: line %(line)s: `company` is your own company name; write `%(new)s` for "
                                 "it, and `contact.company` for the recipient's", params=params))
        else:
            found.append(Finding("legacy-variable", WARNING,
                                 "%(part)s: line %(line)s: `%(name)s` is an older name; write `%(new)s`", params=params))
    return found


def _attribute_uses(ast: nodes.Template) -> list[tuple[str, str, int]]:
    """`contact.x`, `contact['x']`, `sender.x` uses in the template."""
    uses = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not isinstance(base, nodes.Name) or base.name not in ("contact", "sender"):
            continue
        if isinstance(node, nodes.Getattr):
            uses.append((base.name, node.attr, node.lineno))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            uses.append((base.name, node.arg.value, node.lineno))
    return uses


def _deceptive(subject: str) -> Finding:
    return Finding("deceptive-subject", ERROR,
                   "subject %(subject)r pretends to be a reply or forward (no thread exists)", 16,
                   key="", params={"subject": subject.strip()[:60]})


_UNDEFINED = re.compile(r"'([^']+)' is undefined")


def render_failure(exc: TemplateError) -> Finding:
    """A dry render that failed, as a finding."""
    cause = exc.__cause__
    if isinstance(cause, BudgetExceeded):
        return Finding("render-budget", ERROR, "over the render budget: %(error)s", 24, params={"error": str(cause)})
    if isinstance(cause, SecurityError):
        return Finding("unsafe-template", ERROR, "the sandbox refused: %(error)s", 24, params={"error": str(cause)})
    if isinstance(cause, UndefinedError):
        undefined = _UNDEFINED.fullmatch(str(cause))
        if undefined:  # Jinja's "'x' is undefined", as a template the admin translates
            return Finding("unknown-variable", ERROR, "dry render: %(name)r is undefined", 24,
                           params={"name": undefined.group(1)})
        return Finding("unknown-variable", ERROR, "dry render: %(error)s", 24, params={"error": str(cause)})
    return template_error(str(cause or exc))


def template_error(error: str) -> Finding:
    """A template that does not compile or render, as a finding."""
    return Finding("template-error", ERROR, "%(error)s", 24, params={"error": error})


# ---- what a recipient gets ---------------------------------------------------------------
def lint_rendered(rendered: Rendered, links: Links) -> list[Finding]:
    """Compliance and readability checks of one rendered message (footer included)."""
    found: list[Finding] = []
    if DECEPTIVE_SUBJECT.search(rendered.subject):
        found.append(_deceptive(rendered.subject))
    if not rendered.body_text.strip():
        found.append(Finding("missing-text", ERROR,
                             "no text part: the campaign has no text and none can be derived from its HTML "
                             "(image-only mail?)", 24))
    as_shown = as_clients_parse(rendered.html)
    visible, reasons = link_visibility(as_shown, links.unsubscribe)
    if not visible:
        if reasons:
            found.append(Finding("unsubscribe-hidden", ERROR,
                                 "the unsubscribe link is hidden in the HTML part: %(reason)s", 9,
                                 params={"reason": reasons[0]}))
        else:
            found.append(Finding("unsubscribe-missing", ERROR,
                                 "no unsubscribe link in the rendered HTML part (is the footer swallowed by an "
                                 "unclosed comment or element?)", 9))
    if links.unsubscribe not in rendered.text:
        found.append(Finding("unsubscribe-missing", ERROR, "no unsubscribe link in the text part", 9))
    # A body with its own visible unsubscribe link can still hide the footer (identity, address).
    footer_reason = footer_hidden_reason(as_shown) if visible else None
    if footer_reason:
        found.append(Finding("footer-hidden", ERROR,
                             "the footer with the sender's identity and postal address is hidden: %(reason)s", 15,
                             params={"reason": footer_reason}))
    found.extend(readability(rendered))
    return found


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def paragraphs(body_text: str) -> list[str]:
    """Paragraphs of a rendered body: blocks separated by blank lines, whitespace folded."""
    blocks = re.split(r"\n\s*\n", body_text.strip())
    return [" ".join(b.split()) for b in blocks if b.strip()]


def readability(rendered: Rendered) -> list[Finding]:
    """The seed's guidance as warnings: short, plain, light, value first."""
    found: list[Finding] = []
    body_text = rendered.body_text or html_to_text(rendered.body_html)
    paras = paragraphs(body_text)
    if len(paras) > MAX_PARAGRAPHS:
        found.append(Finding("too-many-paragraphs", WARNING, "%(n)s paragraphs; keep it to %(max)s or fewer",
                             params={"n": len(paras), "max": MAX_PARAGRAPHS}))
    for para in paras:
        lines = -(-_columns(para) // LINE_COLUMNS)
        if lines > MAX_LINES_PER_PARAGRAPH:
            found.append(Finding("long-paragraph", WARNING,
                                 "a paragraph of %(n)s lines (%(columns)s columns each) starting %(start)r; "
                                 "keep paragraphs to %(max)s lines", key=para[:20],
                                 params={"n": lines, "columns": LINE_COLUMNS, "start": para[:40],
                                         "max": MAX_LINES_PER_PARAGRAPH}))
    subject = rendered.subject
    if len(subject) > MAX_SUBJECT_CHARS:
        found.append(Finding("long-subject", WARNING,
                             "subject has %(n)s characters (for this sample); over %(max)s is cut off on phones",
                             key="", params={"n": len(subject), "max": MAX_SUBJECT_CHARS}))
    letters = [c for c in subject if c.isalpha() and c.lower() != c.upper()]
    if len(letters) >= 6 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        found.append(Finding("capital-subject", WARNING, "subject %(subject)r is in capitals", key="",
                             params={"subject": subject[:60]}))
    for phrase, pattern in _SPAM:
        if pattern.search(subject) or pattern.search(body_text):
            found.append(Finding("spam-phrase", WARNING, "spam-trigger phrase %(phrase)r", key=phrase,
                                 params={"phrase": phrase}))
    images = [n for n in parse_html(rendered.body_html) if n.tag == "img"]
    no_alt = [n for n in images if not n.attrs.get("alt", "").strip()]
    if no_alt:
        found.append(Finding("image-alt", WARNING, "%(n)s image(s) without alt text, e.g. %(src)r",
                             key=f"{len(no_alt)} {no_alt[0].attrs.get('src', '')[:60]}",
                             params={"n": len(no_alt), "src": no_alt[0].attrs.get("src", "")[:60]}))
    text_chars = len("".join(body_text.split()))
    if images and text_chars < MIN_TEXT_PER_IMAGE * len(images):
        found.append(Finding("image-heavy", WARNING,
                             "%(n)s image(s) and %(chars)s characters of text; many filters and readers distrust "
                             "mail that is mostly images (aim for %(min)s+ per image)", key="",
                             params={"n": len(images), "chars": text_chars, "min": MIN_TEXT_PER_IMAGE}))
    size = len(rendered.html.encode("utf-8"))
    if size > MAX_HTML_BYTES:
        found.append(Finding("too-large", WARNING,
                             "HTML part is %(kb)s KB; Gmail clips messages over 102 KB "
                             "(and hides the footer with the unsubscribe link)", key="",
                             params={"kb": f"{size / 1024:.0f}"}))
    return found


# ---- personalisation ------------------------------------------------------------------
def _guards(test: nodes.Node) -> set[str]:
    """Dotted names an `{% if %}` test mentions: their output inside is not bare."""
    return {name for node in test.find_all((nodes.Name, nodes.Getattr, nodes.Getitem))
            if (name := _dotted(node))}


def _dotted(node: nodes.Node) -> str | None:
    """`first_name`, `contact.company`, `contact['company']` as a dotted name; None for anything else."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return f"{node.node.name}.{node.attr}"
    if (isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name)
            and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
        return f"{node.node.name}.{node.arg.value}"
    return None


def _bare_outputs(node: nodes.Node, guarded: frozenset[str] = frozenset()) -> set[str]:
    """Variables printed as they are (`{{ contact.first_name }}`, no `or` / `default`), outside an `if` on them."""
    out: set[str] = set()
    if isinstance(node, nodes.Output):
        for child in node.nodes:
            name = _dotted(child)
            if name and name not in guarded:
                out.add(name)
        return out
    if isinstance(node, nodes.If):
        inner = guarded | _guards(node.test)
        for child in node.body:
            out |= _bare_outputs(child, inner)
        for child in [*node.elif_, *node.else_]:
            out |= _bare_outputs(child, guarded)
        return out
    for child in node.iter_child_nodes():
        out |= _bare_outputs(child, guarded)
    return out


def _value(context: Mapping[str, Any], dotted: str) -> Any:
    base, _, attr = dotted.partition(".")
    value = context.get(base)
    if attr:
        value = value.get(attr) if isinstance(value, Mapping) else None
    return value


def lint_empty_variables(*, subject: str, html: str, text: str, contacts: Iterable[Any], links: Links,
                         settings: Settings) -> list[Finding]:
    """A variable printed bare that is empty for some sample recipients: "Dear ," reaches them."""
    names: set[str] = set()
    for _what, ast in _parsed(subject, html, text):
        if not isinstance(ast, TemplateSyntaxError):
            names |= _bare_outputs(ast)
    names = {n for n in names if n.partition(".")[0] in KNOWN_VARIABLES}
    if not names:
        return []
    contexts = [template_context(contact, links, settings) for contact in contacts]
    found = []
    for name in sorted(names):
        empty = sum(1 for ctx in contexts if _value(ctx, name) in ("", None))
        if empty:
            found.append(Finding("empty-variable", WARNING,
                                 "`%(name)s` is empty for %(n)s of %(total)s sample recipients; write "
                                 "`{{ %(name)s or \"there\" }}` or `{{ %(name)s | default(\"there\", true) }}`",
                                 params={"name": name, "n": empty, "total": len(contexts)}))
    return found


# ---- transactional mail ---------------------------------------------------------------
def _promotional_words(text: str) -> list[str]:
    words = [phrase for phrase, pattern in _PROMOTIONAL if pattern.search(text)]
    if _PRICE.search(text):
        words.append("price")
    return words


_PROMOTIONAL = [(phrase, _phrase_pattern(phrase)) for phrases in PROMOTIONAL_WORDS.values() for phrase in phrases]


def lint_transactional(*, subject: str, html: str, text: str, segment: str, confirmed: bool) -> list[Finding]:
    """A campaign labelled transactional: why it may be marketing, and the admin confirmation it needs.

    Transactional mail answers a transaction of the recipient (an order, an account change);
    a campaign goes to a segment, so labelling one transactional skips consent, caps, pauses
    and the advertisement notice. An admin must confirm the label before it can be sent.
    """
    found = []
    words = _promotional_words(" ".join((subject, html_to_text(html), text)))
    if words:
        found.append(Finding("transactional-promotional", WARNING,
                             "labelled transactional but reads as promotion (%(words)s): promotional mail is "
                             "marketing and needs consent, caps and the advertisement notice", 16,
                             params={"words": ", ".join(words[:6])}))
    if segment.strip():
        found.append(Finding("transactional-segment", WARNING,
                             "labelled transactional but sent to a segment (%(segment)s), not in answer to a "
                             "transaction of each recipient", 16, params={"segment": segment.strip()}))
    else:
        found.append(Finding("transactional-segment", WARNING,
                             "labelled transactional but sent to every contact, not in answer to a transaction of "
                             "each recipient", 16))
    if not confirmed:
        found.append(Finding("transactional-unconfirmed", ERROR,
                             "a transactional campaign is sent only after an admin confirms it is transactional "
                             "(admin campaign page, or `sendwell campaigns confirm-transactional ID`)", 16))
    return found
