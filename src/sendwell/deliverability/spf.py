"""SPF (RFC 7208): the record's syntax, its DNS-lookup count, and whether it authorises an IP.

Written on dnspython rather than taken from a library: pyspf (last release 2020) and
checkdmarc resolve through resolvers of their own, which take nameserver addresses but not a
port, so they cannot be pointed at SENDWELL_DNS_NAMESERVERS with a port (split-horizon DNS,
the tests' server); checkdmarc also stops at the first error, where this check reports each
problem with its fix. What is here is the part of RFC 7208 a sender needs: the evaluation of
ip4/ip6/a/mx/include/redirect/all for a known IP, and the lookup limit of §4.6.4.
Macros (§7) depend on the sender and the recipient, so terms with them are counted but not
evaluated, and `exists`/`ptr` are not evaluated either (such a record is "not decided").
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from sendwell.deliverability.lookup import Lookup

LOOKUP_LIMIT = 10  # RFC 7208 §4.6.4: include, a, mx, ptr, exists and redirect, all levels together
VOID_LIMIT = 2  # RFC 7208 §4.6.4: look-ups answering nothing
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_COUNTED = {"include", "a", "mx", "ptr", "exists"}
_TERM = re.compile(r"^([+\-~?]?)([a-z0-9][a-z0-9_.-]*)(?:([:=])(.*))?$", re.IGNORECASE)
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}\.?$", re.IGNORECASE)
_CIDR = re.compile(r"^(.*?)(?:/(\d{1,3}))?(?://(\d{1,3}))?$")
RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class SpfSyntaxError(ValueError):
    """A term RFC 7208 §12 does not allow (a permerror at every receiver)."""


@dataclass(frozen=True)
class Term:
    qualifier: str  # + - ~ ?
    name: str  # mechanism or modifier name, lower case
    value: str  # after ':' or '=' ("" when none)
    modifier: bool
    text: str

    @property
    def has_macro(self) -> bool:
        return "%" in self.value


def spf_records(texts: list[str]) -> list[str]:
    """The TXT strings that are SPF records (RFC 7208 §4.5: `v=spf1` then a space or the end)."""
    return [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


def parse(record: str) -> list[Term]:
    """The terms of one record; SpfSyntaxError names the first bad term."""
    parts = record.split()
    if not parts or parts[0].lower() != "v=spf1":
        raise SpfSyntaxError("the record does not start with v=spf1")
    terms = []
    seen_modifiers: set[str] = set()
    for text in parts[1:]:
        match = _TERM.match(text)
        if not match:
            raise SpfSyntaxError(f"{text!r} is not an SPF term")
        qualifier, name, sep, value = match.group(1), match.group(2).lower(), match.group(3), match.group(4) or ""
        if sep == "=":
            if qualifier:
                raise SpfSyntaxError(f"{text!r}: a modifier takes no qualifier")
            if name in ("redirect", "exp"):
                if name in seen_modifiers:
                    raise SpfSyntaxError(f"{text!r}: {name}= may appear only once")
                _check_domain(text, value)
            seen_modifiers.add(name)
            terms.append(Term("", name, value, True, text))
            continue
        if name not in _MECHANISMS:
            raise SpfSyntaxError(f"{text!r}: unknown mechanism {name!r}")
        _check_mechanism(text, name, value, sep)
        terms.append(Term(qualifier or "+", name, value, False, text))
    return terms


def _check_domain(text: str, domain: str) -> None:
    if not domain:
        raise SpfSyntaxError(f"{text!r}: a domain is needed after the colon")
    if "%" not in domain and not _DOMAIN.match(domain):
        raise SpfSyntaxError(f"{text!r}: {domain!r} is not a domain name")


def _check_mechanism(text: str, name: str, value: str, sep: str | None) -> None:
    if name == "all":
        if sep:
            raise SpfSyntaxError(f"{text!r}: `all` takes no value")
    elif name in ("include", "exists"):
        _check_domain(text, value)
    elif name in ("ip4", "ip6"):
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise SpfSyntaxError(f"{text!r}: {value!r} is not an IP{name[-1]} address or network") from None
        if network.version != int(name[-1]):
            raise SpfSyntaxError(f"{text!r}: {value!r} is not an IPv{name[-1]} address")
    elif name in ("a", "mx", "ptr"):
        domain, v4, v6 = _CIDR.match(value).groups()  # type: ignore[union-attr]
        if domain:
            _check_domain(text, domain)
        if (v4 and int(v4) > 32) or (v6 and int(v6) > 128) or (name == "ptr" and (v4 or v6)):
            raise SpfSyntaxError(f"{text!r}: bad prefix length")


@dataclass
class Walk:
    """What following the record and its includes found."""

    lookups: int = 0
    void: int = 0
    errors: list[str] = field(default_factory=list)  # syntax errors and missing includes, with where
    includes: list[str] = field(default_factory=list)


def count_lookups(lookup: Lookup, domain: str) -> Walk:
    """Follow include/redirect from `domain` and count the DNS-querying terms (RFC 7208 §4.6.4)."""
    walk = Walk()
    _walk(lookup, domain, walk, set())
    return walk


def _walk(lookup: Lookup, domain: str, walk: Walk, seen: set[str]) -> None:
    if domain in seen:
        walk.errors.append(f"{domain}: include loop")
        return
    seen.add(domain)
    records = spf_records(lookup.txt(domain))
    if len(records) != 1:
        walk.errors.append(f"{domain}: {'no' if not records else len(records)} SPF records")
        return
    try:
        terms = parse(records[0])
    except SpfSyntaxError as exc:
        walk.errors.append(f"{domain}: {exc}")
        return
    for term in terms:
        if term.name in _COUNTED or (term.modifier and term.name == "redirect"):
            walk.lookups += 1
        if term.has_macro:
            continue
        if term.name == "include" and not term.modifier:
            walk.includes.append(term.value.lower())
            _walk(lookup, term.value.lower().rstrip("."), walk, seen)
        elif term.name == "redirect" and term.modifier:
            _walk(lookup, term.value.lower().rstrip("."), walk, seen)
        elif term.name in ("a", "mx") and not term.modifier:
            target = _CIDR.match(term.value).group(1) or domain  # type: ignore[union-attr]
            found = lookup.mx_hosts(target) if term.name == "mx" else lookup.addresses(target)
            if not found:
                walk.void += 1


def evaluate(lookup: Lookup, domain: str, ip: str, *, depth: int = 0) -> str:
    """check_host() of RFC 7208 §4 for `ip`: pass, fail, softfail, neutral, none, permerror,
    or `undecided` when a term this check does not evaluate (macro, exists, ptr) came first."""
    if depth > LOOKUP_LIMIT:
        return "permerror"
    records = spf_records(lookup.txt(domain))
    if not records:
        return "none"
    if len(records) > 1:
        return "permerror"
    try:
        terms = parse(records[0])
    except SpfSyntaxError:
        return "permerror"
    address = ipaddress.ip_address(ip)
    redirect = None
    for term in terms:
        if term.modifier:
            redirect = term.value if term.name == "redirect" else redirect
            continue
        if term.has_macro or term.name in ("exists", "ptr"):
            return "undecided"
        if _matches(lookup, term, domain, address, depth):
            return RESULTS[term.qualifier]
    if redirect and not any(t.name == "all" for t in terms):
        result = evaluate(lookup, redirect.rstrip("."), ip, depth=depth + 1)
        return "permerror" if result == "none" else result
    return "neutral"


def _matches(lookup: Lookup, term: Term, domain: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
             depth: int) -> bool:
    if term.name == "all":
        return True
    if term.name in ("ip4", "ip6"):
        return address in ipaddress.ip_network(term.value, strict=False)
    if term.name == "include":
        result = evaluate(lookup, term.value.rstrip("."), str(address), depth=depth + 1)
        if result in ("permerror", "none", "undecided"):
            raise _Stop("undecided" if result == "undecided" else "permerror")
        return result == "pass"
    target, v4, v6 = _CIDR.match(term.value).groups()  # type: ignore[union-attr]
    target = (target or domain).rstrip(".")
    prefix = int((v4 if address.version == 4 else v6) or (32 if address.version == 4 else 128))
    hosts = lookup.mx_hosts(target) if term.name == "mx" else [target]
    for host in hosts[:10]:  # RFC 7208 §4.6.4: at most 10 MX names
        for text in lookup.addresses(host) if host else []:
            net = ipaddress.ip_network(f"{text}/{prefix}", strict=False)
            if net.version == address.version and address in net:
                return True
    return False


class _Stop(Exception):
    def __init__(self, result: str) -> None:
        self.result = result


def check_host(lookup: Lookup, domain: str, ip: str) -> str:
    """`evaluate`, with an include that errs ending the evaluation as RFC 7208 §5.2 says."""
    try:
        return evaluate(lookup, domain, ip)
    except _Stop as stop:
        return stop.result
