"""`sendwell domain check`: is the sender's domain ready for Gmail, Yahoo and Microsoft bulk rules?

Checks, each a finding with a severity and, where DNS can fix it, the exact record to publish:
SPF on the Return-Path domain (one record, valid, ≤ 10 look-ups, authorising the sending IPs or
naming the relay), the DKIM key of every configured selector against the signing key, DMARC on
the From domain or its organisational domain (Public Suffix List), the alignment of the DKIM d=
and of the VERP Return-Path domain with the From domain (relaxed or strict as published), the
bounce domain's MX, reverse DNS of the sending IPs, and MTA-STS, TLS-RPT and BIMI as
information. Every look-up goes through SENDWELL_DNS_NAMESERVERS / SENDWELL_DNS_TIMEOUT.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dns.reversename
from publicsuffixlist import PublicSuffixList

from sendwell.config import Settings
from sendwell.deliverability import spf
from sendwell.deliverability.lookup import DnsUnavailable, Lookup
from sendwell.delivery import dkim
from sendwell.i18n.messages import N_, english, message

BLOCKING, WARNING, INFO, PASS = "blocking", "warning", "info", "pass"
SEVERITIES = (BLOCKING, WARNING, INFO, PASS)
# Params a finding quotes as written (the admin shows `quarantine`, `reject` and `command` params as code): the
# stricter DMARC policies, the command that receives bounces.
STRICTER = {"quarantine": "p=quarantine", "reject": "p=reject"}
LISTENER = "sendwell feedback listen"


@dataclass(frozen=True)
class Record:
    """A DNS record to publish: owner name (absolute, with the dot), type, value as a zone file writes it."""

    name: str
    type: str
    value: str

    def text(self) -> str:
        return f"{self.name} {self.type} {self.value}"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "value": self.value}


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    message: str  # English: template % params
    fix: Record | None = None
    template: str | None = None  # the message to translate (None in reports stored before templates were kept)
    params: dict[str, Any] | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == BLOCKING

    def line(self) -> str:
        fix = f"\n    publish: {self.fix.text()}" if self.fix else ""
        return f"{self.severity:8} {self.id}: {self.message}{fix}"

    def as_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "severity": self.severity, "message": self.message,
               "fix": self.fix.as_dict() if self.fix else None}
        if self.template:
            out.update(template=self.template, params=self.params or {})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        fix = data.get("fix")
        return cls(data["id"], data["severity"], data["message"], Record(**fix) if fix else None,
                   data.get("template"), data.get("params"))

    @classmethod
    def of(cls, id: str, severity: str, template: str, params: dict[str, Any] | None = None,
           fix: Record | None = None) -> Finding:
        """A finding from its message template and params (the English message is made from them)."""
        return cls(id, severity, english(template, params or {}), fix, template, params or {})


@dataclass
class DomainReport:
    domain: str
    checked_at: datetime
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    complete: bool = True  # False when DNS did not answer for part of the check

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "checked_at": self.checked_at.isoformat(), "ok": self.ok,
                "complete": self.complete, "blocking": len(self.blocking), "facts": self.facts,
                "findings": [f.as_dict() for f in self.findings]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DomainReport:
        return cls(domain=data["domain"], checked_at=datetime.fromisoformat(data["checked_at"]),
                   findings=[Finding.from_dict(f) for f in data["findings"]], facts=data.get("facts", {}),
                   complete=data.get("complete", True))


# ---- domains ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships; nothing is fetched


def organisational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the registrable domain by the Public Suffix List (the name itself for a suffix)."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(from_domain: str, other: str, mode: str = "r") -> bool:
    """DMARC identifier alignment (RFC 7489 §3.1): strict = the same name, relaxed = the same organisation."""
    a, b = from_domain.lower().rstrip("."), other.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b if mode == "s" else organisational_domain(a) == organisational_domain(b)


def return_path_domain(settings: Settings, from_domain: str) -> str:
    """The VERP Return-Path domain: the deliverer builds bounce+…@ on the From address's domain."""
    return from_domain


def relay_host(settings: Settings) -> str:
    """The host of SENDWELL_SMTP_URL ("" in capture mode)."""
    if settings.smtp_url == "capture":
        return ""
    return (urlsplit(settings.smtp_url).hostname or "").lower()


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sending_ips(settings: Settings) -> list[str]:
    """SENDWELL_SENDING_IPS as normalised addresses; ValueError names a bad entry."""
    out = []
    for item in (p.strip() for p in settings.sending_ips.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ValueError(f"SENDWELL_SENDING_IPS: {item!r} is not an IP address") from None
    return out


def _quote(text: str) -> str:
    """A TXT value as a zone file writes it: 255-octet strings in quotes (RFC 1035 §3.3)."""
    return " ".join(f'"{text[i:i + 255]}"' for i in range(0, len(text), 255)) or '""'


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


# ---- the check ------------------------------------------------------------------------


@dataclass
class _Context:
    settings: Settings
    lookup: Lookup
    from_domain: str
    org_domain: str
    rp_domain: str
    dkim_domain: str
    ips: list[str]
    relay: str
    report: DomainReport
    spf_authorises: bool | None = None  # None: not known (no sending IP, no relay to judge by)
    dkim_valid: bool = False
    unreachable: list[str] = field(default_factory=list)

    def add(self, id: str, severity: str, template: str, params: dict[str, Any] | None = None,
            fix: Record | None = None) -> None:
        self.report.findings.append(Finding.of(id, severity, template, params, fix))


def check_domain(settings: Settings, *, domain: str | None = None, lookup: Lookup | None = None,
                 now: datetime | None = None) -> DomainReport:
    """Check `domain` (default: the From address's) as the From domain of mail sent with `settings`."""
    from_domain = (domain or settings.sender_domain).lower().rstrip(".")
    lookup = lookup or Lookup.for_settings(settings)
    report = DomainReport(domain=from_domain, checked_at=now or datetime.now(timezone.utc))
    ctx = _Context(settings=settings, lookup=lookup, from_domain=from_domain,
                   org_domain=organisational_domain(from_domain),
                   rp_domain=return_path_domain(settings, from_domain),
                   dkim_domain=settings.dkim_domain.lower().rstrip("."), ips=sending_ips(settings),
                   relay=relay_host(settings), report=report)
    report.facts = {"from_domain": from_domain, "organisational_domain": ctx.org_domain,
                    "return_path_domain": ctx.rp_domain, "dkim_domain": ctx.dkim_domain,
                    "sending_ips": ctx.ips, "relay": ctx.relay,
                    "nameservers": settings.dns_nameservers or "system"}
    policy: dict[str, str] | None = None
    for name, section in (("SPF", _check_spf), ("DKIM", _check_dkim), ("DMARC", _check_dmarc)):
        try:
            result = section(ctx)
        except DnsUnavailable:
            ctx.unreachable.append(name)
            continue
        if name == "DMARC":
            policy = result
    if not ctx.unreachable:
        _check_alignment(ctx, policy)
    for name, section in (("MX", _check_bounce_mx), ("PTR", _check_reverse_dns), ("MTA-STS/TLS-RPT/BIMI", _check_extras)):
        try:
            section(ctx)
        except DnsUnavailable:
            ctx.unreachable.append(name)
    if ctx.unreachable:
        report.complete = False
        report.findings.insert(0, Finding.of(
            "dns-unreachable", WARNING,
            N_("DNS did not answer (%(nameservers)s, %(timeout)s s): %(parts)s not checked; nothing is concluded "
               "about them, so they neither pass nor block. Run the check again when DNS answers."),
            {"nameservers": settings.dns_nameservers or message(N_("the system resolver")),
             "timeout": f"{settings.dns_timeout:g}", "parts": ", ".join(ctx.unreachable)}))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    report.findings.sort(key=lambda f: order[f.severity])
    report.facts["dns_queries"] = lookup.queries
    return report


# ---- SPF ------------------------------------------------------------------------------


def _suggested_spf(ctx: _Context, terms: list[str] | None = None) -> Record:
    """One SPF record: the terms kept from what is published, plus the sending IPs or the relay."""
    kept = [t for t in (terms or []) if t.lower().lstrip("+-~?") != "all"]
    wanted = [f"ip{ipaddress.ip_address(ip).version}:{ip}" for ip in ctx.ips]
    if not wanted and ctx.relay and not is_loopback(ctx.relay):
        wanted = [f"a:{ctx.relay}"]
    if not wanted and not kept:
        wanted = ["mx", "a"]  # this domain's own mail hosts; SENDWELL_SENDING_IPS gives an exact record
    for term in wanted:
        if term not in kept:
            kept.append(term)
    return Record(_fqdn(ctx.rp_domain), "TXT", _quote(" ".join(["v=spf1", *kept, "-all"])))


def _check_spf(ctx: _Context) -> None:
    domain = ctx.rp_domain
    records = spf.spf_records(ctx.lookup.txt(domain))
    if not records:
        ctx.spf_authorises = False
        ctx.add("spf-missing", BLOCKING,
                N_("%(domain)s has no SPF record: Gmail, Yahoo and Microsoft reject bulk mail without SPF"),
                {"domain": domain}, _suggested_spf(ctx))
        return
    if len(records) > 1:
        ctx.spf_authorises = False
        merged = [t for r in records for t in r.split()[1:]]
        ctx.add("spf-multiple", BLOCKING,
                N_("%(domain)s has %(n)s SPF records: RFC 7208 §4.5 makes that a permanent error at every "
                   "receiver; publish one record and remove the others"),
                {"domain": domain, "n": len(records)}, _suggested_spf(ctx, list(dict.fromkeys(merged))))
        return
    record = records[0]
    try:
        terms = spf.parse(record)
    except spf.SpfSyntaxError as exc:
        ctx.spf_authorises = False
        ctx.add("spf-syntax", BLOCKING, N_("SPF record of %(domain)s is invalid (%(error)s): receivers treat it as "
                                           "a permanent error. Published: %(record)s"),
                {"domain": domain, "error": str(exc), "record": record}, _suggested_spf(ctx))
        return
    walk = spf.count_lookups(ctx.lookup, domain)
    ctx.report.facts["spf"] = {"record": record, "lookups": walk.lookups, "includes": walk.includes}
    if walk.lookups > spf.LOOKUP_LIMIT:
        ctx.spf_authorises = False
        fix = _suggested_spf(ctx) if ctx.ips else None
        ctx.add("spf-lookups", BLOCKING,
                N_("SPF of %(domain)s needs %(lookups)s DNS look-ups (include, a, mx, ptr, exists, redirect), over "
                   "the limit of %(limit)s (RFC 7208 §4.6.4): receivers answer permerror. Remove includes of "
                   "services that do not send for you, or list their addresses with ip4:/ip6:"),
                {"domain": domain, "lookups": walk.lookups, "limit": spf.LOOKUP_LIMIT}, fix)
        return
    if walk.errors:
        ctx.spf_authorises = False
        ctx.add("spf-include", BLOCKING, N_("SPF of %(domain)s refers to records that fail: %(errors)s (a permerror)"),
                {"domain": domain, "errors": "; ".join(walk.errors)})
        return
    ctx.add("spf-valid", PASS, N_("one valid SPF record on %(domain)s, %(lookups)s of %(limit)s look-ups"),
            {"domain": domain, "lookups": walk.lookups, "limit": spf.LOOKUP_LIMIT})
    if walk.void > spf.VOID_LIMIT:
        ctx.add("spf-void", WARNING, N_("SPF of %(domain)s has %(void)s look-ups that find nothing (limit %(limit)s, "
                                        "RFC 7208 §4.6.4): remove a:/mx: terms for names without addresses"),
                {"domain": domain, "void": walk.void, "limit": spf.VOID_LIMIT})
    if any(t.name == "all" and t.qualifier == "+" for t in terms):
        ctx.add("spf-plus-all", WARNING, N_("SPF of %(domain)s ends in +all: it authorises every host on the internet"),
                {"domain": domain})
    texts = record.split()[1:]
    if ctx.ips:
        results = {ip: spf.check_host(ctx.lookup, domain, ip) for ip in ctx.ips}
        bad = [ip for ip, r in results.items() if r not in ("pass", "undecided")]
        undecided = [ip for ip, r in results.items() if r == "undecided"]
        ctx.spf_authorises = not bad and not undecided
        if bad:
            ctx.add("spf-not-authorised", BLOCKING, N_("SPF of %(domain)s does not authorise the sending IP(s) %(ips)s"),
                    {"domain": domain, "ips": ", ".join(f"{ip} ({results[ip]})" for ip in bad)},
                    _suggested_spf(ctx, texts))
        elif undecided:
            ctx.spf_authorises = None
            ctx.add("spf-undecided", WARNING,
                    N_("SPF of %(domain)s uses macros, exists: or ptr: before deciding %(ips)s; this check cannot "
                       "evaluate those"), {"domain": domain, "ips": ", ".join(undecided)})
        else:
            ctx.add("spf-authorised", PASS, N_("SPF of %(domain)s authorises %(ips)s"),
                    {"domain": domain, "ips": ", ".join(ctx.ips)})
        return
    if not ctx.relay or is_loopback(ctx.relay):
        how = (message(N_("mail leaves through the local relay %(relay)s"), relay=ctx.relay) if ctx.relay
               else message(N_("SMTP is in capture mode")))
        ctx.add("spf-ips-unknown", INFO, N_("the sending IPs are not known (%(how)s): set SENDWELL_SENDING_IPS to "
                                            "check that SPF authorises them"), {"how": how})
        return
    relay_org = organisational_domain(ctx.relay)
    named = [inc for inc in walk.includes if organisational_domain(inc) == relay_org]
    named += [t for t in texts if t.lower().lstrip("+").startswith(("a:", "mx:"))
              and t.split(":", 1)[1].split("/")[0].lower().rstrip(".") == ctx.relay]
    addresses = ctx.lookup.addresses(ctx.relay)
    if not named and addresses:
        named = [ip for ip in addresses if spf.check_host(ctx.lookup, domain, ip) == "pass"]
    if named:
        ctx.spf_authorises = True
        ctx.add("spf-relay", PASS, N_("SPF of %(domain)s names the relay %(relay)s (%(named)s)"),
                {"domain": domain, "relay": ctx.relay, "named": ", ".join(named)})
    else:
        ctx.spf_authorises = None
        ctx.add("spf-relay", WARNING,
                N_("SPF of %(domain)s names neither the relay %(relay)s nor an include of %(org)s: if mail leaves "
                   "through it, add the include your provider documents, or set SENDWELL_SENDING_IPS for an exact "
                   "check"), {"domain": domain, "relay": ctx.relay, "org": relay_org}, _suggested_spf(ctx, texts))


# ---- DKIM -----------------------------------------------------------------------------


def _configured_keys(ctx: _Context) -> list[tuple[str, Path]]:
    s = ctx.settings
    keys = [(s.dkim_selector, Path(s.dkim_key_file).expanduser())]
    if s.dkim_ed25519_key_file:
        keys.append((s.dkim_ed25519_selector or f"{s.dkim_selector}-ed", Path(s.dkim_ed25519_key_file).expanduser()))
    return keys


def _tags(text: str) -> dict[str, str]:
    tags = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def _check_dkim(ctx: _Context) -> None:
    s = ctx.settings
    if not (s.dkim_domain and s.dkim_key_file):
        ctx.add("dkim-not-configured", BLOCKING,
                N_("Sendwell does not sign with DKIM (SENDWELL_DKIM_DOMAIN / _KEY_FILE): run `sendwell dkim keygen` "
                   "and publish the record it prints"))
        return
    valid = []
    for selector, path in _configured_keys(ctx):
        try:
            pem = path.read_bytes()
            expected = dkim.public_key_b64(pem)
            wanted = dkim.dns_record(domain=ctx.dkim_domain, selector=selector, private_key_pem=pem)
        except (OSError, ValueError) as exc:
            ctx.add("dkim-key", BLOCKING, N_("cannot read the DKIM key %(path)s: %(error)s"),
                    {"path": str(path), "error": str(exc)})
            continue
        owner, _, value = wanted.partition(" TXT ")
        fix = Record(owner, "TXT", value)
        name = f"{selector}._domainkey.{ctx.dkim_domain}"
        published = [t for t in ctx.lookup.txt(name) if "p=" in t]
        if not published:
            ctx.add("dkim-missing", BLOCKING, N_("no DKIM key record at %(name)s: receivers cannot verify the signature"),
                    {"name": name}, fix)
            continue
        keys = [_tags(t).get("p", "") for t in published]
        if expected in keys:
            valid.append(selector)
            ctx.add("dkim-key-match", PASS, N_("%(name)s publishes the key Sendwell signs with"), {"name": name})
        elif keys == [""] * len(keys):
            ctx.add("dkim-revoked", BLOCKING, N_("%(name)s publishes an empty p= (a revoked key)"), {"name": name}, fix)
        else:
            ctx.add("dkim-mismatch", BLOCKING,
                    N_("%(name)s publishes a different key than the one in %(path)s: every signature fails"),
                    {"name": name, "path": str(path)}, fix)
    ctx.dkim_valid = bool(valid)


# ---- DMARC ----------------------------------------------------------------------------


def _dmarc_fix(ctx: _Context, tags: dict[str, str] | None = None, **changes: str) -> Record:
    tags = dict(tags or {"v": "DMARC1", "p": "none", "rua": f"mailto:dmarc@{ctx.org_domain}"})
    for name, value in changes.items():
        tags[name] = value
    tags.pop("v", None)
    text = "; ".join(["v=DMARC1", *(f"{k}={v}" for k, v in tags.items())])
    return Record(_fqdn(f"_dmarc.{ctx.org_domain}"), "TXT", _quote(text))


def _check_dmarc(ctx: _Context) -> dict[str, str] | None:
    where = ctx.from_domain
    records = [t for t in ctx.lookup.txt(f"_dmarc.{where}") if t.replace(" ", "").lower().startswith("v=dmarc1")]
    if not records and ctx.org_domain != ctx.from_domain:
        where = ctx.org_domain
        records = [t for t in ctx.lookup.txt(f"_dmarc.{where}") if t.replace(" ", "").lower().startswith("v=dmarc1")]
    if not records:
        ctx.add("dmarc-missing", BLOCKING,
                N_("no DMARC record on %(domain)s or %(org)s: Gmail, Yahoo and Microsoft require one for bulk senders "
                   "(p=none is enough to start; read the reports, then move to %(quarantine)s or %(reject)s)"),
                {"domain": ctx.from_domain, "org": ctx.org_domain, **STRICTER}, _dmarc_fix(ctx))
        return None
    if len(records) > 1:
        ctx.add("dmarc-multiple", BLOCKING,
                N_("_dmarc.%(where)s has %(n)s DMARC records: receivers then apply none (RFC 7489 §6.6.3)"),
                {"where": where, "n": len(records)}, _dmarc_fix(ctx, _tags(records[0])))
        return None
    tags = {k: v.lower() if k in ("p", "sp", "adkim", "aspf") else v for k, v in _tags(records[0]).items()}
    problems = []
    if tags.get("p") not in ("none", "quarantine", "reject"):
        problems.append(f"p={tags.get('p', '(missing)')} (none, quarantine or reject)")
    for name in ("adkim", "aspf"):
        if tags.get(name, "r") not in ("r", "s"):
            problems.append(f"{name}={tags[name]} (r or s)")
    if problems:
        ctx.add("dmarc-invalid", BLOCKING, N_("DMARC record of %(where)s is invalid: %(problems)s. Published: "
                                              "%(record)s"),
                {"where": where, "problems": ", ".join(problems), "record": records[0]},
                _dmarc_fix(ctx, tags, p=tags.get("p") if tags.get("p") in ("none", "quarantine", "reject") else "none"))
        return None
    policy = tags.get("sp", tags["p"]) if where != ctx.from_domain else tags["p"]
    ctx.report.facts["dmarc"] = {"record": records[0], "at": where, "policy": policy,
                                 "adkim": tags.get("adkim", "r"), "aspf": tags.get("aspf", "r")}
    if policy == "none":
        ctx.add("dmarc-policy", INFO, N_("DMARC on %(where)s: p=none, receivers only report; move to %(quarantine)s "
                                         "or %(reject)s once the reports show all your mail aligned"),
                {"where": where, **STRICTER}, _dmarc_fix(ctx, tags, p="quarantine"))
    else:
        ctx.add("dmarc-policy", PASS, N_("DMARC on %(where)s: p=%(policy)s"), {"where": where, "policy": policy})
    if "rua" not in tags:
        ctx.add("dmarc-reports", INFO, N_("DMARC of %(where)s asks for no aggregate reports (rua=)"), {"where": where},
                _dmarc_fix(ctx, tags, rua=f"mailto:dmarc@{ctx.org_domain}"))
    return tags


def _check_alignment(ctx: _Context, tags: dict[str, str] | None) -> None:
    adkim = (tags or {}).get("adkim", "r")
    aspf = (tags or {}).get("aspf", "r")
    mode = {"r": message(N_("relaxed")), "s": message(N_("strict"))}
    dkim_aligned = bool(ctx.dkim_domain) and aligned(ctx.from_domain, ctx.dkim_domain, adkim)
    spf_aligned = aligned(ctx.from_domain, ctx.rp_domain, aspf)
    if ctx.dkim_domain:
        if dkim_aligned:
            ctx.add("dkim-alignment", PASS, N_("DKIM d=%(dkim)s is aligned with From %(domain)s (%(mode)s)"),
                    {"dkim": ctx.dkim_domain, "domain": ctx.from_domain, "mode": mode[adkim]})
        else:
            fix = _dmarc_fix(ctx, tags, adkim="r") if tags and adkim == "s" and aligned(
                ctx.from_domain, ctx.dkim_domain, "r") else None
            template = (N_("DKIM d=%(dkim)s is not aligned with From %(domain)s (%(mode)s adkim): sign with "
                           "SENDWELL_DKIM_DOMAIN=%(domain)s, or relax adkim") if fix else
                        N_("DKIM d=%(dkim)s is not aligned with From %(domain)s (%(mode)s adkim): sign with "
                           "SENDWELL_DKIM_DOMAIN=%(domain)s"))
            ctx.add("dkim-alignment", WARNING, template,
                    {"dkim": ctx.dkim_domain, "domain": ctx.from_domain, "mode": mode[adkim]}, fix)
    if spf_aligned:
        ctx.add("spf-alignment", PASS, N_("Return-Path %(rp)s is aligned with From %(domain)s (%(mode)s)"),
                {"rp": ctx.rp_domain, "domain": ctx.from_domain, "mode": mode[aspf]})
    else:
        fix = _dmarc_fix(ctx, tags, aspf="r") if tags and aspf == "s" and aligned(
            ctx.from_domain, ctx.rp_domain, "r") else None
        ctx.add("spf-alignment", WARNING, N_("Return-Path %(rp)s is not aligned with From %(domain)s (%(mode)s aspf)"),
                {"rp": ctx.rp_domain, "domain": ctx.from_domain, "mode": mode[aspf]}, fix)
    dkim_passes = ctx.dkim_valid and dkim_aligned
    spf_passes = ctx.spf_authorises is True and spf_aligned
    if dkim_passes or spf_passes:
        template = (N_("DMARC passes through DKIM and SPF") if dkim_passes and spf_passes else
                    N_("DMARC passes through DKIM") if dkim_passes else N_("DMARC passes through SPF"))
        ctx.add("dmarc-alignment", PASS, template)
    elif ctx.spf_authorises is None and spf_aligned:
        ctx.add("dmarc-alignment", WARNING, N_("DMARC passes only if SPF authorises the host mail leaves from, "
                                               "and that is not known: no aligned DKIM signature verifies"))
    else:
        ctx.add("dmarc-alignment", BLOCKING,
                N_("mail From %(domain)s fails DMARC: no aligned DKIM signature verifies, and SPF does not pass for "
                   "an aligned Return-Path: fix the DKIM, SPF and alignment findings of this check"),
                {"domain": ctx.from_domain})


# ---- MX, reverse DNS, extras -------------------------------------------------------------


def _check_bounce_mx(ctx: _Context) -> None:
    domain = ctx.rp_domain
    hosts = ctx.lookup.mx_hosts(domain)
    inbound = ctx.settings.inbound_domain_list
    if domain not in inbound:
        ctx.add("bounce-inbound", WARNING,
                N_("bounces come back to bounce+…@%(domain)s, but the inbound listener takes mail only for "
                   "%(inbound)s (SENDWELL_INBOUND_DOMAINS): add %(domain)s there"),
                {"domain": domain, "inbound": ", ".join(inbound)})
    target = f"mail.{ctx.org_domain}"
    fix = Record(_fqdn(domain), "MX", f"10 {_fqdn(target)}")
    if not hosts:
        ctx.add("bounce-mx", WARNING,
                N_("%(domain)s has no MX record: bounces to the Return-Path are not delivered to Sendwell, and some "
                   "receivers refuse a MAIL FROM domain that cannot receive mail. Point it at the host running "
                   "%(command)s (%(target)s below is an example name)"),
                {"domain": domain, "target": target, "command": LISTENER}, fix)
        return
    if hosts == [""]:
        ctx.add("bounce-mx", WARNING, N_("%(domain)s publishes a null MX (RFC 7505): it takes no mail, so bounces "
                                         "are lost and many receivers refuse it as a Return-Path domain"),
                {"domain": domain}, fix)
        return
    resolved = {h: ctx.lookup.addresses(h) for h in hosts}
    dead = [h for h, a in resolved.items() if not a]
    listener = ctx.settings.inbound_host
    reaches = [h for h, a in resolved.items() if listener in a] if not is_loopback(listener) else []
    if len(dead) == len(hosts):
        ctx.add("bounce-mx", WARNING, N_("the MX host(s) of %(domain)s (%(hosts)s) have no address"),
                {"domain": domain, "hosts": ", ".join(hosts)}, fix)
    elif reaches:
        ctx.add("bounce-mx", PASS, N_("MX of %(domain)s reaches the inbound listener %(listener)s (%(hosts)s)"),
                {"domain": domain, "listener": listener, "hosts": ", ".join(reaches)})
    else:
        listed = ", ".join(f"{h} ({' '.join(a) or 'no address'})" for h, a in resolved.items())
        ctx.add("bounce-mx", PASS, N_("MX of %(domain)s: %(hosts)s; that host must run %(command)s or relay "
                                      "bounces to it"), {"domain": domain, "hosts": listed, "command": LISTENER})


def _check_reverse_dns(ctx: _Context) -> None:
    for ip in ctx.ips:
        reverse = dns.reversename.from_address(ip).to_text()
        names = ctx.lookup.ptr(ip)
        hint = f"mail.{ctx.org_domain}"
        if not names:
            ctx.add("ptr-missing", WARNING, N_("%(ip)s has no reverse DNS (PTR): Gmail refuses mail from IPs "
                                               "without it. The owner of the IP (your host or ISP) sets it; the name "
                                               "must resolve back to the IP"),
                    {"ip": ip}, Record(reverse, "PTR", _fqdn(hint)))
            continue
        confirmed = [n for n in names if ip in [str(ipaddress.ip_address(a)) for a in ctx.lookup.addresses(n)]]
        if confirmed:
            ctx.add("ptr-fcrdns", PASS, N_("%(ip)s → %(name)s → %(ip)s (forward-confirmed reverse DNS)"),
                    {"ip": ip, "name": confirmed[0]})
        else:
            kind = "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
            ctx.add("ptr-fcrdns", WARNING, N_("%(ip)s → %(name)s, but %(name)s does not resolve back to %(ip)s"),
                    {"ip": ip, "name": names[0]}, Record(_fqdn(names[0]), kind, ip))


def _check_extras(ctx: _Context) -> None:
    d = ctx.from_domain
    sts = [t for t in ctx.lookup.txt(f"_mta-sts.{d}") if t.lower().startswith("v=stsv1")]
    if sts:
        ctx.add("mta-sts", PASS, N_("MTA-STS published on %(domain)s (%(record)s)"), {"domain": d, "record": sts[0]})
    else:
        ctx.add("mta-sts", INFO, N_("no MTA-STS on %(domain)s (optional: receivers sending to you insist on TLS); it "
                                    "also needs a policy file at https://mta-sts.%(domain)s/.well-known/mta-sts.txt"),
                {"domain": d},
                Record(_fqdn(f"_mta-sts.{d}"), "TXT", _quote(f"v=STSv1; id={ctx.report.checked_at:%Y%m%d}01")))
    rpt = [t for t in ctx.lookup.txt(f"_smtp._tls.{d}") if t.lower().startswith("v=tlsrptv1")]
    if rpt:
        ctx.add("tls-rpt", PASS, N_("TLS-RPT published on %(domain)s"), {"domain": d})
    else:
        ctx.add("tls-rpt", INFO, N_("no TLS-RPT on %(domain)s (optional: reports of TLS failures sending to you)"),
                {"domain": d}, Record(_fqdn(f"_smtp._tls.{d}"), "TXT", _quote(f"v=TLSRPTv1; rua=mailto:tlsrpt@{ctx.org_domain}")))
    bimi = [t for t in ctx.lookup.txt(f"default._bimi.{d}") if t.lower().startswith("v=bimi1")]
    if bimi:
        ctx.add("bimi", PASS, N_("BIMI published on %(domain)s"), {"domain": d})
    else:
        ctx.add("bimi", INFO, N_("no BIMI on %(domain)s (optional: a logo beside your mail; needs DMARC at %(quarantine)s "
                                 "or %(reject)s, and Gmail needs a mark certificate)"), {"domain": d, **STRICTER})
