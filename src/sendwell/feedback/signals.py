"""Sender-side signals: which mailbox provider refused our mail, and the fix to tell the operator in words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sendwell.i18n.messages import N_

# Well-known consumer domains of the big providers; any other domain is its own "provider".
_PROVIDERS = (
    ("Google", ("gmail.com", "googlemail.com", "google.com")),
    ("Microsoft", ("outlook.com", "hotmail.com", "live.com", "msn.com", "outlook.", "hotmail.", "live.",
                   "protection.outlook.com")),
    ("Yahoo", ("yahoo.com", "ymail.com", "aol.com", "yahoo.", "aol.", "rocketmail.com")),
    ("Apple", ("icloud.com", "me.com", "mac.com")),
    ("Tencent", ("qq.com", "foxmail.com", "vip.qq.com", "exmail.qq.com")),
    ("NetEase", ("163.com", "126.com", "yeah.net", "vip.163.com", "188.com")),
)


def provider_of(domain: str) -> str:
    """The mailbox provider a recipient (or reporter) domain belongs to: Google, Microsoft, …, else the domain."""
    domain = domain.strip().strip(".").lower().rpartition("@")[2]
    for name, patterns in _PROVIDERS:
        for pattern in patterns:
            # "outlook." matches outlook.de / hotmail.co.uk; exact names also match their subdomains.
            if pattern.endswith("."):
                if domain.startswith(pattern):
                    return name
            elif domain == pattern or domain.endswith("." + pattern):
                return name
    return domain or "unknown"


# Codes only one provider uses name it even when the recipient's domain is a company's own
# (Microsoft 365 and Google Workspace host thousands of B2B domains).
_PROVIDER_CODES = {
    "Microsoft": ("5.7.515", "5.7.509", "5.7.705", "5.7.706", "5.7.707", "5.7.708", "5.7.750", "5.1.10", "5.1.351",
                  "4.7.650", "4.7.500"),
    "Google": ("5.7.25", "5.7.26", "5.7.27", "5.7.28", "5.7.30", "4.7.25", "4.7.26", "4.7.28"),
}
# The receiving hosts' names in the diagnostic ("… gsmtp", "….protection.outlook.com").
_PROVIDER_HOSTS = (
    ("Microsoft", re.compile(r"protection\.outlook\.com|outlook\.com\b|\bexchange ?online", re.I)),
    ("Google", re.compile(r"\bgsmtp\b|aspmx\.l\.google\.com|google\.com/mail", re.I)),
    ("Yahoo", re.compile(r"yahoodns\.net|\byahoo\.com\b|\bTSS0\d", re.I)),
)


def provider_for(domain: str, *, status: str | None = None, diagnostic: str = "") -> str:
    """The provider that refused: by the recipient's domain, else by a provider-only code or host name, else the domain."""
    by_domain = provider_of(domain)
    if by_domain != (domain.strip().strip(".").lower().rpartition("@")[2] or "unknown"):
        return by_domain
    for name, codes in _PROVIDER_CODES.items():
        if status in codes:
            return name
    for name, pattern in _PROVIDER_HOSTS:
        if diagnostic and pattern.search(diagnostic):
            return name
    return by_domain


@dataclass(frozen=True)
class SenderFix:
    """What a refusal is about (topic) and what the operator should do, in words."""

    topic: str  # authentication | dmarc | ptr | reputation | blocklist | content | rate | policy
    fix: str


_DMARC = SenderFix("dmarc", N_("publish a DMARC record aligned with your From domain (DKIM-sign with that "
                               "domain and pass SPF)"))
_AUTH = SenderFix("authentication", N_("authenticate the mail: DKIM-sign it with your From domain, make SPF "
                                       "pass for the sending IP and publish a DMARC record aligned with them"))
_PTR = SenderFix("ptr", N_("give the sending IP a reverse DNS (PTR) name that resolves back to the same IP"))
_REPUTATION = SenderFix("reputation", N_("slow down, check list quality (remove unengaged and unconfirmed "
                                         "addresses) and watch the complaint rate; the sending IP or domain has a "
                                         "poor reputation there"))
_BLOCKLIST = SenderFix("blocklist", N_("the sending IP or domain is on a blocklist: find which one (the message "
                                       "names it), fix the cause and request removal"))
_CONTENT = SenderFix("content", N_("the content was refused: check links (no URL shorteners, no listed domains), "
                                   "attachments and spam-like wording"))
_RATE = SenderFix("rate", N_("slow down: lower the pace for this provider; it is limiting how fast it accepts mail"))
_POLICY = SenderFix("policy", N_("check SPF, DKIM and DMARC alignment, the sending IP's reputation and the pace"))

# Provider codes with a known meaning (Microsoft and Gmail publish theirs).
_BY_STATUS = {
    "5.7.515": _DMARC, "5.7.509": _DMARC, "5.7.26": _AUTH, "5.7.27": _AUTH, "5.7.30": _AUTH,
    "5.7.25": _PTR, "5.7.28": _REPUTATION, "5.7.705": _REPUTATION, "5.7.706": _REPUTATION,
    "5.7.707": _REPUTATION, "5.7.708": _REPUTATION, "5.7.750": _REPUTATION, "4.7.28": _REPUTATION,
    "5.7.23": _AUTH, "4.7.26": _AUTH, "4.7.25": _PTR, "5.7.24": _AUTH,
}
_WORDS = (
    (re.compile(r"\bdmarc\b", re.I), _DMARC),
    (re.compile(r"\b(?:spf|dkim|authenticat|unauthenticated|sender policy framework)", re.I), _AUTH),
    (re.compile(r"\b(?:ptr|reverse dns|rdns|reverse lookup|reverse-dns)\b", re.I), _PTR),
    (re.compile(r"spamhaus|spamcop|barracuda|sorbs|\bblack ?list|\bblock ?list|\bdnsbl\b|\brbl\b|listed (?:at|in|on)",
                re.I), _BLOCKLIST),
    (re.compile(r"\b(?:rate|too many|throttl|try again later|frequency|volume)\b", re.I), _RATE),
    (re.compile(r"\b(?:virus|malware|attachment|url|link|content)\b", re.I), _CONTENT),
    (re.compile(r"\b(?:spam|reputation|bulk|unsolicited|junk|TSS0\d)", re.I), _REPUTATION),
)


def fix_for(status: str | None, reason: str = "", diagnostic: str = "") -> SenderFix:
    """The topic and fix for a sender-fault refusal: the provider's code first, then the words."""
    if status and status in _BY_STATUS:
        return _BY_STATUS[status]
    text = f"{reason} {diagnostic}"
    for pattern, fix in _WORDS:
        if pattern.search(text):
            return fix
    if status and status.split(".")[1:2] == ["6"]:
        return _CONTENT  # RFC 3463 X.6.x: media / content
    return _POLICY


def authentication_fix(auth_failure: str | None) -> SenderFix:
    """The fix for an RFC 6591 authentication-failure (or DMARC failure) report."""
    kind = (auth_failure or "").lower()
    if "dmarc" in kind:
        return _DMARC
    return _AUTH

