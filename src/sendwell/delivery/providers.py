"""Provider groups: which mailbox provider receives a recipient domain's mail, from its name or its MX hosts.

Providers throttle per provider, not per domain: thousands of company domains are hosted by
Google Workspace or Microsoft 365 and share those providers' limits. `ProviderGroups.group_for`
maps a domain to a group name ("google", "microsoft", …, or "other"):

1. the domain itself against the operator's globs (SENDWELL_PROVIDER_GROUPS), then the built-in ones
   (consumer domains such as gmail.com or qq.com need no DNS);
2. else its MX hosts, in preference order, against the same globs. MX hosts are looked up once per
   domain and kept in the database (table provider_mx) for MX_TTL, an empty answer (no such domain,
   no MX) for NEGATIVE_TTL; the group is worked out from the stored hosts on every read, so a changed
   SENDWELL_PROVIDER_GROUPS applies at once;
3. a DNS failure (timeout, SERVFAIL) never blocks a mail: the domain keeps the group of its last
   stored hosts, or is grouped by name only ("other"), and is asked again after FAILURE_TTL.

Special-use names (RFC 6761: .example, .test, .invalid, .localhost) are not looked up on the
system's resolver, where they have no MX; they are when SENDWELL_DNS_NAMESERVERS names servers.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from fnmatch import translate

import dns.exception
import dns.resolver
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings, parse_provider_groups
from sendwell.db.models import ProviderMx
from sendwell.db.session import transaction
from sendwell.mail.resolver import make_resolver

OTHER = "other"
MX_TTL = timedelta(hours=24)
NEGATIVE_TTL = timedelta(hours=1)
FAILURE_TTL = 300.0  # seconds before a domain whose lookup failed is asked again
_SPECIAL = (".example", ".test", ".invalid", ".localhost")

# Built-in groups: globs on the recipient domain or an MX host name (fnmatch, lower case).
# Consumer domains are listed so they need no lookup; hosted company domains are found by MX.
BUILTIN_GROUPS: dict[str, tuple[str, ...]] = {
    "google": ("gmail.com", "googlemail.com", "google.com", "*.google.com", "*.googlemail.com"),
    "microsoft": ("outlook.com", "outlook.*", "hotmail.com", "hotmail.*", "live.com", "live.*", "msn.com",
                  "windowslive.com", "*.outlook.com", "*.protection.outlook.com", "*.hotmail.com"),
    "yahoo": ("yahoo.com", "yahoo.*", "ymail.com", "rocketmail.com", "aol.com", "aim.com", "*.yahoodns.net",
              "*.yahoo.com", "*.aol.com"),
    "apple": ("icloud.com", "me.com", "mac.com", "*.mail.icloud.com", "*.icloud.com"),
    "qq": ("qq.com", "vip.qq.com", "foxmail.com", "*.qq.com", "*.exmail.qq.com"),
    "netease": ("163.com", "126.com", "yeah.net", "188.com", "vip.163.com", "vip.126.com", "*.163.com",
                "*.126.com", "*.yeah.net", "*.netease.com", "*.qiye.163.com"),
    "alibaba": ("aliyun.com", "*.aliyun.com", "*.mxhichina.com", "*.qiye.aliyun.com", "*.alibaba.com"),
    "zoho": ("zoho.com", "zohomail.com", "zoho.eu", "zoho.in", "*.zoho.com", "*.zoho.eu", "*.zoho.in",
             "*.zohomail.com"),
    "yandex": ("yandex.ru", "yandex.com", "yandex.*", "ya.ru", "*.yandex.ru", "*.yandex.net", "*.yandex.com"),
    "mailru": ("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "*.mail.ru"),
    "gmx": ("gmx.com", "gmx.net", "gmx.de", "gmx.*", "web.de", "*.gmx.net", "*.gmx.com", "*.web.de",
            "*.kundenserver.de", "*.ionos.com", "*.ionos.de"),
    "orange": ("orange.fr", "wanadoo.fr", "*.orange.fr"),
    "proton": ("proton.me", "protonmail.com", "pm.me", "*.protonmail.ch"),
}


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class MxLookupFailed(Exception):
    """The lookup did not get an answer (timeout, SERVFAIL, no server reachable)."""


def mx_lookup(resolver: dns.resolver.Resolver) -> Callable[[str], list[str]]:
    """A function domain → MX host names by preference; [] when the domain or its MX does not exist."""

    def lookup(domain: str) -> list[str]:
        try:
            answer = resolver.resolve(domain, "MX")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise MxLookupFailed(f"{domain}: {exc}") from exc
        records = sorted(answer, key=lambda r: (r.preference, str(r.exchange)))
        return [str(r.exchange).rstrip(".").lower() for r in records if str(r.exchange) not in (".", "")]

    return lookup


class ProviderGroups:
    """`group_for(domain)`: the provider group of a recipient domain; built once per process from settings."""

    def __init__(self, extra: dict[str, tuple[str, ...]] | None = None, *,
                 lookup: Callable[[str], list[str]] | None = None,
                 factory: sessionmaker[Session] | None = None, look_up_special: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # Operator groups first: they may claim a domain or MX a built-in group also matches.
        self.patterns = list((extra or {}).items()) + [(n, g) for n, g in BUILTIN_GROUPS.items() if n not in (extra or {})]
        # Each group's globs as one compiled expression: matching runs for every mail, and
        # fnmatchcase per glob cost ~3 % of a worker's CPU (py-spy of bench/send.py).
        self._compiled = [(group, re.compile("|".join(f"(?:{translate(g)})" for g in globs)))
                          for group, globs in self.patterns if globs]
        self._lookup = lookup
        self._factory = factory
        self._look_up_special = look_up_special
        self._clock = clock
        self._memo: dict[str, tuple[str, float]] = {}  # domain → (group, monotonic time it is good until)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, factory: sessionmaker[Session] | None = None) -> ProviderGroups:
        resolver = make_resolver(settings.dns_nameservers, timeout=min(settings.dns_timeout, 3.0))
        return cls(parse_provider_groups(settings.provider_groups), lookup=mx_lookup(resolver), factory=factory,
                   look_up_special=bool(settings.dns_nameservers))

    @property
    def names(self) -> list[str]:
        """Every group name, `other` last."""
        return [name for name, _ in self.patterns] + [OTHER]

    def match(self, name: str) -> str | None:
        """The group whose globs match a domain or host name, or None."""
        name = name.lower().rstrip(".")
        for group, expression in self._compiled:
            if expression.match(name):
                return group
        return None

    def match_hosts(self, hosts: Iterable[str]) -> str:
        for host in hosts:
            group = self.match(host)
            if group is not None:
                return group
        return OTHER

    def group_for(self, domain: str) -> str:
        """The group of a recipient domain (or address); never raises for DNS trouble."""
        domain = domain.rpartition("@")[2].lower().rstrip(".")
        group = self.match(domain)
        if group is not None:
            return group
        now = self._clock()
        memo = self._memo.get(domain)
        if memo is not None and memo[1] > now:
            return memo[0]
        group, seconds = self._resolve(domain)
        with self._lock:
            self._memo[domain] = (group, now + seconds)
        return group

    def _resolve(self, domain: str) -> tuple[str, float]:
        """(group, seconds to remember it in this process)."""
        if self._lookup is None or (domain.endswith(_SPECIAL) and not self._look_up_special):
            return OTHER, MX_TTL.total_seconds()
        now = datetime.now(timezone.utc)
        stored = self._stored(domain)
        if stored is not None and _utc(stored.expires_at) > now:
            return self.match_hosts(stored.mx_hosts.split()), (_utc(stored.expires_at) - now).total_seconds()
        try:
            hosts = self._lookup(domain)
        except MxLookupFailed:
            # Never block on DNS: the last known hosts, or the name alone; asked again soon.
            return self.match_hosts(stored.mx_hosts.split() if stored else ()), FAILURE_TTL
        group = self.match_hosts(hosts)
        ttl = MX_TTL if hosts else NEGATIVE_TTL
        self._store(domain, hosts, group, now, now + ttl)
        return group, ttl.total_seconds()

    def _stored(self, domain: str) -> ProviderMx | None:
        if self._factory is None:
            return None
        with transaction(self._factory) as session:
            row = session.get(ProviderMx, domain)
            if row is not None:
                session.expunge(row)
            return row

    def _store(self, domain: str, hosts: list[str], group: str, now: datetime, expires: datetime) -> None:
        if self._factory is None:
            return
        values = {"domain": domain, "mx_hosts": " ".join(hosts)[:4000], "provider": group, "checked_at": now,
                  "expires_at": expires}
        with transaction(self._factory) as session:
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            stmt = insert(ProviderMx).values(values)
            session.execute(stmt.on_conflict_do_update(
                index_elements=["domain"], set_={k: stmt.excluded[k] for k in values if k != "domain"}))

    def stored_groups(self) -> dict[str, int]:
        """How many looked-up domains each group has in the database (for the admin and status)."""
        if self._factory is None:
            return {}
        with transaction(self._factory) as session:
            rows = session.execute(select(ProviderMx.mx_hosts)).scalars().all()
        counts: dict[str, int] = {}
        for hosts in rows:
            group = self.match_hosts(hosts.split())
            counts[group] = counts.get(group, 0) + 1
        return counts
