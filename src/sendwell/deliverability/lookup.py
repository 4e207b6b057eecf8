"""DNS look-ups for the domain check, on the one configured resolver (sendwell.mail.resolver).

Answers are cached for the life of one check, so SPF evaluated for several IPs asks each name
once. "The name has no such record" (NXDOMAIN, no answer) is an empty list; "DNS did not
answer" (timeout, every server failed) raises DnsUnavailable, which the check reports as a
warning instead of mistaking it for a missing record.
"""

from __future__ import annotations

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from sendwell.config import Settings
from sendwell.mail.resolver import make_resolver


class DnsUnavailable(RuntimeError):
    """No DNS server answered (timeout, refusal, SERVFAIL): nothing can be concluded."""


class Lookup:
    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver
        self._cache: dict[tuple[str, str], list[str]] = {}
        self.queries = 0
        # After one "DNS did not answer", every later look-up of the same check fails at once:
        # an outage costs one timeout, not one per record.
        self.unavailable: DnsUnavailable | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> Lookup:
        return cls(make_resolver(settings.dns_nameservers, timeout=settings.dns_timeout))

    def records(self, name: str, rdtype: str) -> list[str]:
        """The records' texts (TXT strings joined, as RFC 7208 §3.3 and RFC 6376 §3.6.2.2 read them)."""
        key = (name.lower().rstrip("."), rdtype)
        if key in self._cache:
            return self._cache[key]
        if self.unavailable is not None:
            raise self.unavailable
        self.queries += 1
        try:
            answer = self.resolver.resolve(key[0] + ".", rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            out: list[str] = []
        except dns.name.EmptyLabel:
            out = []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            self.unavailable = DnsUnavailable(f"DNS did not answer for {key[0]} {rdtype}: {exc}")
            raise self.unavailable from exc
        else:
            if rdtype == "TXT":
                out = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
            elif rdtype == "MX":
                out = [f"{r.preference} {r.exchange.to_text().rstrip('.').lower()}" for r in answer]
            elif rdtype in ("PTR", "CNAME", "NS"):
                out = [r.target.to_text().rstrip(".").lower() for r in answer]
            else:
                out = [r.to_text() for r in answer]
        self._cache[key] = out
        return out

    def txt(self, name: str) -> list[str]:
        return self.records(name, "TXT")

    def addresses(self, name: str) -> list[str]:
        return self.records(name, "A") + self.records(name, "AAAA")

    def mx_hosts(self, name: str) -> list[str]:
        """MX targets by preference (RFC 7505 null MX "." included as "")."""
        rows = sorted((int(p), host) for p, _, host in (r.partition(" ") for r in self.records(name, "MX")))
        return [host for _, host in rows]

    def ptr(self, ip: str) -> list[str]:
        return self.records(dns.reversename.from_address(ip).to_text().rstrip("."), "PTR")
