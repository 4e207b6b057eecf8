"""Compliance lint (errors: the campaign cannot be sent) and readability lint (warnings).

Every compliance finding names its row in COMPLIANCE.md's checklist. The checks run on the
settings, on the templates' source (static analysis), and on what recipients would really
get: the rendered, CSS-inlined message with the system footer, one sample per region and
language of the campaign's audience.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jinja2 import TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError

from sendwell.config import Settings
from sendwell.content.budget import BudgetExceeded
from sendwell.content.render import (
    HTML_ENV,
    KNOWN_VARIABLES,
    TEXT_ENV,
    Links,
    Rendered,
    TemplateError,
    as_clients_parse,
    html_to_text,
)
from sendwell.content.visibility import link_visibility, parse_html

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
# prefixes in English, German, French, Spanish, Italian, Nordic and Chinese mail clients.
DECEPTIVE_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:re|fw|fwd|aw|wg|tr|rv|r|res|enc|sv|vs|antw|回复|回覆|答复|转发|轉寄|转寄)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]",
    re.IGNORECASE,
)

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
    """One lint result; `rule` is the COMPLIANCE.md checklist row of a compliance finding."""

    code: str
    severity: str
    message: str
    rule: int | None = None
    samples: tuple[str, ...] = ()
    # Findings with the same code and key are one finding across samples (personalisation
    # changes the numbers in a message, not the problem); None = the message is the key.
    key: str | None = field(default=None, compare=False, repr=False)

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
                "samples": list(self.samples)}


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
    out = [Finding(f.code, f.severity, f.message, f.rule, tuple(samples)) for f, samples in merged.values()]
    return sorted(out, key=lambda f: (f.severity != ERROR, f.rule or 99))


# ---- settings ------------------------------------------------------------------------
def lint_settings(settings: Settings, *, regions: set[str] | None = None) -> list[Finding]:
    """Sender identity, postal address, contact details (row 15) and DKIM (row 23)."""
    found: list[Finding] = []
    name, address = parseaddr(settings.from_)
    if "@" not in address or not address.rpartition("@")[2]:
        found.append(Finding("sender-identity", ERROR, f"SENDWELL_FROM {settings.from_!r} has no valid address", 15))
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
    found.extend(_lint_dkim(settings, address))
    if regions and regions & {"eu", "uk"} and not settings.privacy_url:
        found.append(Finding("privacy-notice", WARNING,
                             "SENDWELL_PRIVACY_URL is empty: EU/UK mails say the notice is available on request "
                             "(GDPR Art 13/14 expect a link)", None))
    return found


def _lint_dkim(settings: Settings, from_address: str) -> list[Finding]:
    if not (settings.dkim_domain and settings.dkim_key_file):
        return [Finding("dkim-missing", ERROR,
                        "no DKIM key configured (SENDWELL_DKIM_DOMAIN / _KEY_FILE): run `sendwell dkim keygen`", 23)]
    found: list[Finding] = []
    from_domain = from_address.rpartition("@")[2].lower().rstrip(".")
    dkim_domain = settings.dkim_domain.lower().rstrip(".")
    if from_domain and not aligned(from_domain, dkim_domain):
        found.append(Finding("dkim-alignment", ERROR,
                             f"From domain {from_domain} is not aligned with the DKIM domain {dkim_domain} (DMARC)", 23))
    try:
        key = load_pem_private_key(Path(settings.dkim_key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return found + [Finding("dkim-missing", ERROR, f"cannot read the DKIM key {settings.dkim_key_file}: {exc}", 23)]
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            found.append(Finding("dkim-key-size", ERROR, f"DKIM key is RSA-{key.key_size}; receivers need ≥ 1024", 23))
        elif key.key_size < 2048:
            found.append(Finding("dkim-key-size", WARNING, f"DKIM key is RSA-{key.key_size}; use 2048", 23))
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
CONTACT_FIELDS = frozenset({"first_name", "last_name", "company", "job_title", "industry", "country", "region",
                            "stage", "language", "email", "tags", "custom"})
SENDER_FIELDS = frozenset({"company", "email", "phone", "website"})
_DICT_METHODS = frozenset({"items", "keys", "values", "get"})


def lint_templates(*, subject: str, html: str, text: str) -> list[Finding]:
    """Syntax, unknown variables (jinja2.meta), and a deceptive subject, from the source."""
    found: list[Finding] = []
    for what, source, env in (("subject", subject, TEXT_ENV), ("html", html, HTML_ENV), ("text", text, TEXT_ENV)):
        if not source.strip():
            continue
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as exc:
            found.append(Finding("template-syntax", ERROR, f"{what}: line {exc.lineno}: {exc.message}", 24))
            continue
        for name in sorted(meta.find_undeclared_variables(ast) - KNOWN_VARIABLES):
            found.append(Finding("unknown-variable", ERROR, f"{what}: unknown template variable {name!r}", 24))
        for base, attr, lineno in _attribute_uses(ast):
            allowed = CONTACT_FIELDS if base == "contact" else SENDER_FIELDS
            if attr not in allowed and attr not in _DICT_METHODS:
                found.append(Finding("unknown-variable", ERROR,
                                     f"{what}: line {lineno}: {base} has no field {attr!r} "
                                     f"(known: {', '.join(sorted(allowed))})", 24))
    if DECEPTIVE_SUBJECT.search(subject):
        found.append(_deceptive(subject))
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
                   f"subject {subject.strip()[:60]!r} pretends to be a reply or forward (no thread exists)", 16,
                   key="")


def render_failure(exc: TemplateError) -> Finding:
    """A dry render that failed, as a finding."""
    cause = exc.__cause__
    if isinstance(cause, BudgetExceeded):
        return Finding("render-budget", ERROR, f"over the render budget: {cause}", 24)
    if isinstance(cause, SecurityError):
        return Finding("unsafe-template", ERROR, f"the sandbox refused: {cause}", 24)
    if isinstance(cause, UndefinedError):
        return Finding("unknown-variable", ERROR, f"dry render: {cause}", 24)
    return Finding("template-error", ERROR, str(cause or exc), 24)


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
    visible, reasons = link_visibility(as_clients_parse(rendered.html), links.unsubscribe)
    if not visible:
        if reasons:
            found.append(Finding("unsubscribe-hidden", ERROR,
                                 f"the unsubscribe link is hidden in the HTML part: {reasons[0]}", 9))
        else:
            found.append(Finding("unsubscribe-missing", ERROR,
                                 "no unsubscribe link in the rendered HTML part (is the footer swallowed by an "
                                 "unclosed comment or element?)", 9))
    if links.unsubscribe not in rendered.text:
        found.append(Finding("unsubscribe-missing", ERROR, "no unsubscribe link in the text part", 9))
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
        found.append(Finding("too-many-paragraphs", WARNING,
                             f"{len(paras)} paragraphs; keep it to {MAX_PARAGRAPHS} or fewer"))
    for para in paras:
        lines = -(-_columns(para) // LINE_COLUMNS)
        if lines > MAX_LINES_PER_PARAGRAPH:
            found.append(Finding("long-paragraph", WARNING,
                                 f"a paragraph of {lines} lines ({LINE_COLUMNS} columns each) starting "
                                 f"{para[:40]!r}; keep paragraphs to {MAX_LINES_PER_PARAGRAPH} lines",
                                 key=para[:20]))
    subject = rendered.subject
    if len(subject) > MAX_SUBJECT_CHARS:
        found.append(Finding("long-subject", WARNING,
                             f"subject has {len(subject)} characters (for this sample); over {MAX_SUBJECT_CHARS} "
                             "is cut off on phones", key=""))
    letters = [c for c in subject if c.isalpha() and c.lower() != c.upper()]
    if len(letters) >= 6 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        found.append(Finding("capital-subject", WARNING, f"subject {subject[:60]!r} is in capitals", key=""))
    for phrase, pattern in _SPAM:
        if pattern.search(subject) or pattern.search(body_text):
            found.append(Finding("spam-phrase", WARNING, f"spam-trigger phrase {phrase!r}"))
    images = [n for n in parse_html(rendered.body_html) if n.tag == "img"]
    no_alt = [n for n in images if not n.attrs.get("alt", "").strip()]
    if no_alt:
        found.append(Finding("image-alt", WARNING,
                             f"{len(no_alt)} image(s) without alt text, e.g. {no_alt[0].attrs.get('src', '')[:60]!r}"))
    text_chars = len("".join(body_text.split()))
    if images and text_chars < MIN_TEXT_PER_IMAGE * len(images):
        found.append(Finding("image-heavy", WARNING,
                             f"{len(images)} image(s) and {text_chars} characters of text; many filters and "
                             f"readers distrust mail that is mostly images (aim for {MIN_TEXT_PER_IMAGE}+ per image)",
                             key=""))
    size = len(rendered.html.encode("utf-8"))
    if size > MAX_HTML_BYTES:
        found.append(Finding("too-large", WARNING,
                             f"HTML part is {size / 1024:.0f} KB; Gmail clips messages over 102 KB "
                             "(and hides the footer with the unsubscribe link)", key=""))
    return found
