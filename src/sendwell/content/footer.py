"""The system footer, chosen by the recipient's region and language; templates cannot remove it.

Every string is a msgid of the `content` catalog (i18n/locales/<lang>/LC_MESSAGES/content.po).
What each region gets, and why:

- everyone: sender identity, postal address, contact details, unsubscribe and preference
  links (COMPLIANCE rows 9 and 15; 15 USC 7704(a)(5); ePrivacy Art 13(4); UWG §7);
- us: an advertisement notice unless the contact gave prior express consent
  (15 USC 7704(a)(5)(A)(i));
- ca: CASL identification — who sends, on whose behalf, address and a way to reach them —
  and an unsubscribe mechanism valid for at least 60 days (CASL s6(2), s11; CRTC regs s2-3);
- eu / uk: a data-use notice — controller, purpose, lawful basis, the source of the data
  (GDPR Art 14(2)(f) for contacts not collected from the person), the right to object
  (Art 21) and the privacy notice (Art 13 / 14).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from markupsafe import Markup, escape

from sendwell.config import Settings
from sendwell.i18n import choose_language, translations

# Babel's locale parsing is the slowest step of a render otherwise; few distinct tags exist.
language_of = lru_cache(maxsize=512)(choose_language)

DOMAIN = "content"


def N_(message: str) -> str:
    """Mark a msgid for extraction (`pybabel extract -k N_`); translated at render time."""
    return message


@dataclass(frozen=True)
class RecipientFacts:
    """What the footer needs to know beyond the contact's own fields."""

    consent_kind: str | None = None  # the strongest active consent (ConsentKind value)
    data_source: str = ""  # where the contact's data came from (GDPR Art 14(2)(f))


# ---- the messages ------------------------------------------------------------------
AD_NOTICE = N_("This email is an advertisement from %(company)s.")
CONTACT_LINE = N_("Contact: %(details)s")
REASON = N_("You receive this email because of your business contact with %(company)s.")
UNSUBSCRIBE = N_("Unsubscribe")
PREFERENCES = N_("Email preferences")
UNSUBSCRIBE_TEXT = N_("Unsubscribe: %(url)s")
PREFERENCES_TEXT = N_("Email preferences: %(url)s")
CASL_SENDER = N_("Sent by %(company)s on its own behalf.")
CASL_VALIDITY = N_(
    "The unsubscribe link works for at least 60 days after this email was sent, "
    "and your request takes effect immediately."
)
GDPR = N_("GDPR")
UK_GDPR = N_("UK GDPR")
DATA_HEADING = N_("Data protection:")
CONTROLLER = N_("%(company)s is the controller of your personal data.")
PURPOSE = N_(
    "We use your name, business email address and company details only to send you "
    "information about our products and services."
)
BASIS_CONSENT = N_("Lawful basis: your consent (Art. 6(1)(a) %(law)s).")
BASIS_CUSTOMER = N_(
    "Lawful basis: our legitimate interest in keeping our existing customers informed (Art. 6(1)(f) %(law)s)."
)
BASIS_INTEREST = N_("Lawful basis: our legitimate interest in business-to-business marketing (Art. 6(1)(f) %(law)s).")
SOURCE = N_("We obtained your contact details from: %(source)s.")
OBJECT = N_(
    "You may object to this use at any time, free of charge (Art. 21 %(law)s): "
    "use the unsubscribe link or reply to this email."
)
RIGHTS = N_(
    "You also have the rights of access, rectification and erasure, and may lodge a complaint "
    "with a supervisory authority."
)
PRIVACY = N_("Privacy notice")
PRIVACY_TEXT = N_("Privacy notice: %(url)s")
PRIVACY_ON_REQUEST = N_("Our privacy notice is available on request from %(email)s.")

# Lawful basis per consent kind (models.ConsentKind); an unknown or missing kind falls back
# to legitimate interest, the basis that B2B marketing without consent relies on.
_BASIS = {
    "express": BASIS_CONSENT,
    "soft_opt_in": BASIS_CUSTOMER,
    "implied_purchase": BASIS_CUSTOMER,
    "implied_inquiry": BASIS_INTEREST,
    "legitimate_interest": BASIS_INTEREST,
}
NOTICE_REGIONS = ("eu", "uk")
_DOUBLE_STOP = re.compile(r"(?<=\w)\.\.(?=\s|$)")


@dataclass(frozen=True)
class _Lines:
    """The footer as ordered (kind, text) lines; HTML and text are two views of it."""

    language: str
    lines: list[tuple[str, Any]]


def _build(contact: Any, settings: Any, facts: RecipientFacts, marketing: bool) -> _Lines:
    language = choose_language(getattr(contact, "language", None))
    t = translations(language, DOMAIN)
    _ = t.gettext
    region = getattr(contact, "region", None) or "other"
    company, address = settings.company_name, settings.postal_address
    lines: list[tuple[str, Any]] = []
    if region == "us" and marketing and facts.consent_kind != "express":
        # 15 USC 7704(a)(5)(A)(i): clear identification as an advertisement without prior
        # affirmative consent; placed first so it is conspicuous.
        lines.append(("ad", _tidy(_(AD_NOTICE) % {"company": company})))
    lines.append(("identity", (company, address)))
    lines.append(("contact", _(CONTACT_LINE)))
    if region == "ca":
        lines.append(("plain", _tidy(_(CASL_SENDER) % {"company": company})))
    lines.append(("links", _tidy(_(REASON) % {"company": company})))
    if region == "ca":
        lines.append(("plain", _(CASL_VALIDITY)))
    if region in NOTICE_REGIONS:
        law = _(UK_GDPR if region == "uk" else GDPR)
        notice = [
            _tidy(_(CONTROLLER) % {"company": company}),
            _(PURPOSE),
            _(_BASIS.get(facts.consent_kind or "", BASIS_INTEREST)) % {"law": law},
        ]
        if facts.data_source:
            notice.append(_tidy(_(SOURCE) % {"source": facts.data_source}))
        notice.append(_(OBJECT) % {"law": law})
        notice.append(_(RIGHTS))
        lines.append(("notice", notice))
    return _Lines(language=language, lines=lines)


def _sentence_gap(language: str) -> str:
    """Chinese sentences follow each other without a space; the others take one."""
    return "" if language.startswith("zh") else " "


def _tidy(sentence: str) -> str:
    """`Co., Ltd..` → `Co., Ltd.`: a name ending in a full stop before the sentence's own."""
    return _DOUBLE_STOP.sub(".", sentence)


def _contact_bits(settings: Any) -> list[str]:
    return [x for x in (settings.contact_email, settings.contact_phone, settings.website) if x]


def footer_html(
    contact: Any, links: Any, settings: Settings, facts: RecipientFacts | None = None, *, marketing: bool = True
) -> str:
    """The footer for the HTML part, in the contact's language, with inline styles."""
    footer = _cached("html", *_key(contact, settings, facts, marketing))
    return footer.replace(_UNSUB, str(escape(links.unsubscribe))).replace(_PREFS, str(escape(links.preferences)))


def footer_text(
    contact: Any, links: Any, settings: Settings, facts: RecipientFacts | None = None, *, marketing: bool = True
) -> str:
    """The footer for the plain-text part, in the contact's language."""
    footer = _cached("text", *_key(contact, settings, facts, marketing))
    return footer.replace(_UNSUB, links.unsubscribe).replace(_PREFS, links.preferences)


# The footer differs between recipients only in its two links: build it once per
# (region, language, consent, source, identity) with stand-ins and substitute the links.
_UNSUB = "https://sendwell.invalid/unsubscribe-link"
_PREFS = "https://sendwell.invalid/preferences-link"
_IDENTITY = ("company_name", "postal_address", "contact_email", "contact_phone", "website", "privacy_url")


def _key(contact: Any, settings: Settings, facts: RecipientFacts | None, marketing: bool) -> tuple[Any, ...]:
    facts = facts or RecipientFacts()
    return (getattr(contact, "region", None) or "other", language_of(getattr(contact, "language", None)),
            facts.consent_kind, facts.data_source, marketing, tuple(getattr(settings, k) for k in _IDENTITY))


@lru_cache(maxsize=4096)
def _cached(part: str, region: str, language: str, consent_kind: str | None, data_source: str, marketing: bool,
            identity: tuple[str, ...]) -> str:
    contact = SimpleNamespace(region=region, language=language)
    settings = SimpleNamespace(**dict(zip(_IDENTITY, identity)))
    links = SimpleNamespace(unsubscribe=_UNSUB, preferences=_PREFS)
    facts = RecipientFacts(consent_kind, data_source)
    build = _footer_html if part == "html" else _footer_text
    return build(contact, links, settings, facts, marketing)


def _footer_html(contact: Any, links: Any, settings: Any, facts: RecipientFacts, marketing: bool) -> str:
    built = _build(contact, settings, facts, marketing)
    _ = translations(built.language, DOMAIN).gettext
    out: list[str] = []
    for kind, value in built.lines:
        if kind == "identity":
            out.append(Markup("<strong>{}</strong>, {}").format(*value))
        elif kind == "contact":
            bits = [escape(settings.contact_email)] if settings.contact_email else []
            if settings.contact_phone:
                bits.append(escape(settings.contact_phone))
            if settings.website:
                bits.append(Markup('<a href="{0}" style="color:#555">{0}</a>').format(settings.website))
            out.append(escape(value) % {"details": Markup(" · ").join(bits)})
        elif kind == "links":
            out.append(
                Markup('{} <a href="{}" style="color:#555;text-decoration:underline">{}</a> · '
                       '<a href="{}" style="color:#555;text-decoration:underline">{}</a>').format(
                    value, links.unsubscribe, _(UNSUBSCRIBE), links.preferences, _(PREFERENCES)
                )
            )
        elif kind == "notice":
            parts = [escape(x) for x in value]
            if settings.privacy_url:
                parts.append(Markup('<a href="{}" style="color:#555">{}</a>').format(settings.privacy_url, _(PRIVACY)))
            else:
                parts.append(escape(_(PRIVACY_ON_REQUEST) % {"email": settings.contact_email}))
            sep = _sentence_gap(built.language)
            out.append(Markup("<strong>{}</strong>{}").format(_(DATA_HEADING), sep) + Markup(sep).join(parts))
        else:
            out.append(escape(value))
    inner = "".join(f'<p style="margin:4px 0">{line}</p>' for line in out)
    return (
        f'<div class="sendwell-footer" lang="{built.language.replace("_", "-")}" '
        'style="margin-top:24px;padding-top:12px;border-top:1px solid #ddd;color:#555;'
        f'font-size:12px;line-height:1.4">{inner}</div>'
    )


def _footer_text(contact: Any, links: Any, settings: Any, facts: RecipientFacts, marketing: bool) -> str:
    built = _build(contact, settings, facts, marketing)
    _ = translations(built.language, DOMAIN).gettext
    out = ["--"]
    for kind, value in built.lines:
        if kind == "identity":
            out.append(f"{value[0]}, {value[1]}")
        elif kind == "contact":
            out.append(value % {"details": " / ".join(_contact_bits(settings))})
        elif kind == "links":
            out.append(value)
            out.append(_(UNSUBSCRIBE_TEXT) % {"url": links.unsubscribe})
            out.append(_(PREFERENCES_TEXT) % {"url": links.preferences})
        elif kind == "notice":
            out.append("")
            sep = _sentence_gap(built.language)
            out.append(_(DATA_HEADING) + sep + sep.join(value))
            if settings.privacy_url:
                out.append(_(PRIVACY_TEXT) % {"url": settings.privacy_url})
            else:
                out.append(_(PRIVACY_ON_REQUEST) % {"email": settings.contact_email})
        else:
            out.append(value)
    return "\n".join(out) + "\n"
