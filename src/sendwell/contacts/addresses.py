"""Address cleaning: syntax and IDNA, role addresses, disposable domains, likely domain typos, MX."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from email_validator import EmailUndeliverableError, validate_email
from rapidfuzz import fuzz, process

from sendwell.contacts.fields import normalise_email

INVALID = "invalid"
ROLE = "role_address"
DISPOSABLE = "disposable"
TYPO = "typo_suspected"
NO_MX = "no_mx"

# Mailbox providers whose misspellings are worth a suggestion. Look-alike real providers
# (mail.com, gmx.com, ymail.com, me.com, …) are listed too, so they are never "corrected".
COMMON_DOMAINS = (
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "ymail.com",
    "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de", "outlook.com", "live.com", "msn.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "mail.com", "email.com", "gmx.com", "gmx.de", "gmx.net",
    "web.de", "t-online.de", "orange.fr", "free.fr", "laposte.net", "libero.it", "proton.me", "protonmail.com",
    "mail.ru", "yandex.ru", "yandex.com", "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net",
    "sina.com", "sohu.com", "aliyun.com", "naver.com", "comcast.net", "verizon.net", "att.net",
)
_COMMON = frozenset(COMMON_DOMAINS)
# difflib ratio above which an unknown domain is taken for a slip of the keyboard
# (gmial.com → gmail.com is 0.89; acme.com → aol.com is 0.67).
TYPO_CUTOFF = 0.85


@dataclass(frozen=True)
class AddressNote:
    flag: str
    detail: str

    def __str__(self) -> str:
        return f"{self.flag}: {self.detail}"


@lru_cache(maxsize=1)
def disposable_domains() -> frozenset[str]:
    """The bundled list of disposable domains (contacts/disposable_domains.txt)."""
    text = Path(__file__).with_name("disposable_domains.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _is_disposable(domain: str) -> bool:
    # A subdomain of a disposable service (x.mailinator.com) is just as disposable.
    parts = domain.split(".")
    listed = disposable_domains()
    return any(".".join(parts[i:]) in listed for i in range(len(parts) - 1))


@lru_cache(maxsize=1)
def _common_by_length() -> dict[int, list[str]]:
    """Common domains by length, each listed under its own length and both neighbours."""
    buckets: dict[int, list[str]] = {}
    for name in COMMON_DOMAINS:
        for size in (len(name) - 1, len(name), len(name) + 1):
            buckets.setdefault(size, []).append(name)
    return buckets


def suggest_domain(domain: str) -> str | None:
    """The common provider domain this one is probably a typo of (gmial.com → gmail.com), or None."""
    domain = domain.lower()
    if domain in _COMMON:
        return None
    # A typo adds, drops, swaps or replaces a letter or two: lengths stay within one
    # (acme.com is not a slip for me.com, though difflib rates them alike).
    near = _common_by_length().get(len(domain))
    if not near:
        return None
    # difflib's ratio counts characters in matching blocks, a common subsequence, so it is
    # never above rapidfuzz's Indel ratio (the longest common subsequence): candidates below
    # the cutoff there cannot reach it in difflib. This C prefilter leaves difflib only the
    # rare near-miss, so a million distinct company domains cost about a second, not minutes.
    near = [name for name, _, _ in process.extract(domain, near, scorer=fuzz.ratio, limit=None,
                                                   score_cutoff=TYPO_CUTOFF * 100 - 1e-6)]
    match = difflib.get_close_matches(domain, near, n=1, cutoff=TYPO_CUTOFF) if near else None
    return match[0] if match else None


def suggest_domain_difflib(domain: str) -> str | None:
    """suggest_domain without the prefilter (for tests that both agree)."""
    domain = domain.lower()
    if domain in _COMMON:
        return None
    near = [d for d in COMMON_DOMAINS if abs(len(d) - len(domain)) <= 1]
    match = difflib.get_close_matches(domain, near, n=1, cutoff=TYPO_CUTOFF)
    return match[0] if match else None


def check_address(email: str, *, roles: frozenset[str], mx: bool = False) -> list[AddressNote]:
    """What cleaning notices about one address; an `invalid` note alone when the syntax fails."""
    try:
        # The import's own check: a fast pattern for plain ASCII addresses, email-validator
        # (syntax and IDNA, UTS #46) for the rest, so a pass over a big list stays short.
        normalised = normalise_email(email)
    except ValueError as exc:
        return [AddressNote(INVALID, str(exc))]
    domain = normalised.rpartition("@")[2]
    notes = notes_for_valid(normalised, roles=roles)
    if mx and not has_mail_server(domain):
        notes.append(AddressNote(NO_MX, f"{domain} has no MX (or A) record"))
    return notes


def notes_for_valid(email: str, *, roles: frozenset[str]) -> list[AddressNote]:
    """Role, disposable and typo notes for an address already known to be valid (cheap: the import's hook)."""
    local, _, domain = email.rpartition("@")
    local, domain = local.lower(), domain.lower()
    notes: list[AddressNote] = []
    if local in roles or local.split("+", 1)[0] in roles:
        notes.append(AddressNote(ROLE, f"{local}@ is a role address (a shared mailbox, not a person)"))
    disposable, suggestion = _domain_notes(domain)
    if disposable:
        notes.append(AddressNote(DISPOSABLE, f"{domain} is a disposable-mailbox service"))
    if suggestion:
        # Suggested, never applied: the address may be right, and only its owner can say.
        notes.append(AddressNote(TYPO, f"did you mean {email.rpartition('@')[0]}@{suggestion}?"))
    return notes


@lru_cache(maxsize=65536)
def _domain_notes(domain: str) -> tuple[bool, str | None]:
    """(disposable?, typo suggestion) of a lower-case domain: once per domain in a big import.

    The one cache of both checks (suggest_domain itself is not cached: it would hold the same
    domains a second time)."""
    return _is_disposable(domain), suggest_domain(domain)


def has_mail_server(domain: str) -> bool:
    """True when DNS says the domain accepts mail (MX, or the A/AAAA fallback of RFC 5321 §5.1).

    A DNS failure (no resolver, timeout) counts as True: cleaning never flags on missing data.
    """
    try:
        validate_email(f"postmaster@{domain}", check_deliverability=True, timeout=5)
    except EmailUndeliverableError:
        return False
    except Exception:
        return True
    return True
