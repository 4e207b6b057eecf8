"""What the admin shows for a stored code, one table per vocabulary (English msgids; templates wrap them in `_()`).

The codes come from the vocabularies themselves, so a new code without a label fails
tests/web/admin/test_labels.py. A code no table knows (an operator's own industry or stage)
is shown as it is: it is the operator's word.
"""

from __future__ import annotations

from typing import Any

from babel import Locale, UnknownLocaleError
from jinja2 import pass_context
from jinja2.runtime import Context

from sendwell.contacts.lawful_basis import ALL_KINDS as CONSENT_KINDS
from sendwell.contacts.regions import REGIONS
from sendwell.contacts.vocabulary import DEFAULT_INDUSTRIES, DEFAULT_STAGES
from sendwell.delivery.providers import BUILTIN_GROUPS
from sendwell.delivery.providers import OTHER as OTHER_PROVIDERS
from sendwell.db.models import CampaignKind, CampaignStatus, SendState, SuppressionReason
from sendwell.feedback.classify.result import CATEGORIES as FEEDBACK_CATEGORIES
from sendwell.insight.engagement import ENGAGEMENT_KINDS
from sendwell.insight.rollup import ROLLED_KINDS
from sendwell.optout.service import METHODS, REASONS
from sendwell.policy.eligibility import skip_label
from sendwell.segments.expression import HYGIENE_FLAGS

# Event kinds people see on a contact's timeline and in the event logs (beyond the rolled-up ones).
EVENT_KINDS = (*ROLLED_KINDS, *ENGAGEMENT_KINDS, "unsubscribe_reason", "resubscribed", "suppressed",
               "preferences_changed", "consent_expired", "pause_ended", "auto_reply")

REASON = {
    "not_relevant": "Not relevant", "too_many": "Too many emails", "never_signed_up": "Never signed up",
    "situation_changed": "My situation changed", "other": "Other reason",
}
REGION = {
    "eu": "EU and EEA", "uk": "United Kingdom", "us": "United States", "ca": "Canada", "au": "Australia",
    "cn": "China", "other": "Other regions",
}
STAGE = {"new_lead": "New lead", "prospect": "Prospect", "customer": "Customer"}
INDUSTRY = {
    "lighting": "Lighting", "hardware": "Hardware and tools", "furniture": "Furniture",
    "textiles": "Textiles and apparel", "packaging": "Packaging", "electronics": "Electronics",
    "machinery": "Machinery", "automotive": "Auto parts", "building-materials": "Building materials",
    "chemicals": "Chemicals", "food": "Food and beverage", "medical": "Medical devices",
    "home-appliances": "Home appliances", "energy": "Energy", "agriculture": "Agriculture",
    "cosmetics": "Cosmetics", "toys": "Toys", "sports": "Sports and outdoor", "retail": "Retail and wholesale",
    "other": "Other industry",
}
EVENT = {
    "unsubscribed": "Unsubscribed", "unsubscribe_reason": "Reason given", "resubscribed": "Resubscribed",
    "bounced": "Bounced", "complained": "Complaint", "auto_reply": "Auto-reply", "clicked": "Clicked",
    "opened": "Opened", "replied": "Replied", "engaged": "Engaged again", "suppressed": "Suppressed",
    "preferences_changed": "Preferences changed", "consent_expired": "Consent lapsed", "pause_ended": "Pause ended",
}
METHOD = {
    "one_click": "One-click unsubscribe", "page": "Unsubscribe page", "preference_center": "Preference centre",
    "mailto": "Unsubscribe e-mail", "reply": "Reply", "complaint": "Spam complaint", "bounce": "Bounce",
    "admin": "By an administrator", "api": "Through the API", "feedback_loop": "Mailbox provider's feedback loop",
}
CONSENT = {
    "express": "Express consent", "implied_purchase": "Implied consent (purchase)",
    "implied_inquiry": "Implied consent (inquiry)", "soft_opt_in": "Soft opt-in",
    "legitimate_interest_b2b": "Legitimate interest (B2B)", "legitimate_interest": "Legitimate interest (B2B)",
}
CAMPAIGN_KIND = {"marketing": "Marketing", "launch": "Product launch", "transactional": "Transactional",
                 "reconfirmation": "Reconfirmation"}
CAMPAIGN_STATUS = {"draft": "Draft", "scheduled": "Scheduled", "sending": "Sending", "paused": "Paused",
                   "finished": "Finished", "cancelled": "Cancelled"}
SEND_STATE = {"planned": "Planned", "queued": "Queued", "sending": "Sending", "sent": "Sent",
              "deferred": "Deferred", "failed": "Failed", "skipped": "Skipped"}
SUPPRESSION = {"unsubscribe": "Unsubscribed", "complaint": "Spam complaint", "hard_bounce": "Hard bounce",
               "soft_bounce_streak": "Repeated soft bounces", "sunset": "No answer to reconfirmation",
               "manual": "Added by hand", "erased": "Erased on request"}
FEEDBACK = {"hard": "Hard bounce", "soft": "Soft bounce", "block": "Refused by the receiver",
            "complaint": "Spam complaint", "unsubscribe": "Opt-out at the mailbox provider", "auto_reply": "Auto-reply",
            "challenge": "Challenge to prove a person sent it", "delivered": "Delivered", "delay": "Delayed",
            "other": "Other message"}
ADDRESS_FLAG = {"role_address": "Role address (a team, not a person)", "disposable": "Disposable address",
                "typo_suspected": "Suspected typo", "no_mx": "Domain takes no mail"}
PROVIDER = {"google": "Google (Gmail)", "microsoft": "Microsoft (Outlook)", "yahoo": "Yahoo and AOL",
            "apple": "Apple (iCloud)", "qq": "QQ Mail", "netease": "NetEase (163, 126)", "alibaba": "Alibaba Mail",
            "zoho": "Zoho Mail", "yandex": "Yandex Mail", "mailru": "Mail.ru", "gmx": "GMX and WEB.DE",
            "orange": "Orange Mail", "proton": "Proton Mail", "other": "Other providers"}
# RFC 7489 §6.3: what a receiver did with mail that failed DMARC (p=).
DMARC_DISPOSITIONS = ("none", "quarantine", "reject")
DMARC_DISPOSITION = {"none": "Delivered as usual", "quarantine": "Sent to spam", "reject": "Rejected"}

# kind → (its labels, the codes the vocabulary defines): the test checks the two agree.
VOCABULARIES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "reason": (REASON, REASONS),
    "region": (REGION, REGIONS),
    "stage": (STAGE, tuple(DEFAULT_STAGES)),
    "industry": (INDUSTRY, tuple(DEFAULT_INDUSTRIES)),
    "event": (EVENT, EVENT_KINDS),
    "method": (METHOD, METHODS),
    "consent": (CONSENT, tuple(CONSENT_KINDS)),
    "campaign_kind": (CAMPAIGN_KIND, tuple(k.value for k in CampaignKind)),
    "campaign_status": (CAMPAIGN_STATUS, tuple(s.value for s in CampaignStatus)),
    "send_state": (SEND_STATE, tuple(s.value for s in SendState)),
    "suppression": (SUPPRESSION, tuple(r.value for r in SuppressionReason)),
    "feedback": (FEEDBACK, FEEDBACK_CATEGORIES),
    "address_flag": (ADDRESS_FLAG, HYGIENE_FLAGS),
    "provider": (PROVIDER, (*BUILTIN_GROUPS, OTHER_PROVIDERS)),
    "dmarc_disposition": (DMARC_DISPOSITION, DMARC_DISPOSITIONS),
}
# The old single table, for templates that write `_(code|label)`: reasons before stages and events.
ANY = {**EVENT, **STAGE, **REASON}


def label(kind: str, code: str | None) -> str:
    """The English label (a catalog msgid) of a code in one vocabulary; an unknown code as it is."""
    if code is None:
        return ""
    return VOCABULARIES[kind][0].get(code, code)


def any_label(code: str | None, kind: str | None = None) -> str:
    """`|label("region")` names the vocabulary; a bare `|label` knows reasons, stages and events."""
    if kind is not None:
        return label(kind, code)
    return "" if code is None else ANY.get(code, code)


def country_name(code: str | None, language: str) -> str:
    """A country's name in the reader's language (`DE` → 德国); an unknown code as it is."""
    if not code:
        return ""
    return Locale.parse(language).territories.get(code.upper(), code)


def language_name(code: str | None, language: str) -> str:
    """A contact's language in the reader's language (`de` → 德语); an unknown tag as it is."""
    if not code:
        return ""
    try:
        return Locale.parse(code.replace("-", "_")).get_display_name(language) or code
    except (ValueError, UnknownLocaleError):
        return code


def audience_value(key: str | None, dimension: str, language: str) -> str:
    """A breakdown row's value: a label for a vocabulary, a name for a country or language, else as stored."""
    if not key:
        return "–"
    if dimension in VOCABULARIES:
        return label(dimension, key)
    if dimension == "country":
        return country_name(key, language)
    if dimension == "language":
        return language_name(key, language)
    return key


@pass_context
def sample_label(context: Context, text: str) -> str:
    """A sample recipient `eu/de` (region/language) as the reader reads it: `EU and EEA · German`."""
    region, _sep, language = str(text).partition("/")
    translate = context.get("_") or (lambda message: message)
    shown = translate(label("region", region))
    return f"{shown} · {language_name(language, context.get('lang', 'en'))}" if language else shown


def filters() -> dict[str, object]:
    """Jinja filters: `label` plus `<kind>_label` for every vocabulary (`{{ _(c.region|region_label) }}`)."""
    made: dict[str, object] = {"label": any_label, "country_name": country_name, "language_name": language_name,
                               "audience_value": audience_value, "sample_label": sample_label,
                               "skip_label": skip_label}
    for kind in VOCABULARIES:
        made[f"{kind}_label"] = lambda code, kind=kind: label(kind, code)
    return made


# Evidence kept with a bounce or complaint for audits, not for reading: references, how it was matched.
_EVIDENCE_ONLY = frozenset({"raw_ref", "matched_by", "recipient", "source", "reply_code", "diagnostic", "classification",
                            "review_id", "send_id", "campaign_id"})


def event_details(data: dict[str, Any] | None) -> dict[str, str]:
    """An event's data as a page shows it.

    `reason` is an unsubscribe reason code (labelled), `category` a feedback category (labelled),
    `text` words a person or a receiving server wrote (shown as written), `detail` the remaining
    codes (a status such as 5.1.1, a feedback type).
    """
    data = data or {}
    reason = str(data.get("reason") or "")
    words = [str(data[k]) for k in ("text",) if data.get(k)]
    if reason and reason not in REASON:  # a bounce's reason is the receiver's own words
        words.insert(0, reason)
        reason = ""
    rest = ", ".join(f"{k}: {v}" for k, v in sorted(data.items()) if isinstance(v, (str, int)) and v != ""
                     and k not in ("reason", "text", "category", *_EVIDENCE_ONLY))
    return {"reason": reason, "text": " · ".join(words), "category": str(data.get("category") or ""), "detail": rest}
