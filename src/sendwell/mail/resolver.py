"""The DNS resolver every lookup goes through: the system's, or the servers SENDWELL_DNS_NAMESERVERS names."""

from __future__ import annotations

import ipaddress

import dns.nameserver
import dns.resolver


class NameserverError(ValueError):
    """A SENDWELL_DNS_NAMESERVERS entry that is not `host[:port]`."""


def parse_nameservers(text: str) -> list[tuple[str, int]]:
    """`"127.0.0.1:5353, ::1, [::1]:53"` → [(address, port), …]; port 53 when none is given."""
    servers = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, port = item, 53
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise NameserverError(f"nameserver {item!r}: expected [address]:port")
                port = _port(item, rest[1:])
        elif item.count(":") == 1:  # IPv4 or name with a port; a bare IPv6 address has several colons
            host, _, text_port = item.partition(":")
            port = _port(item, text_port)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise NameserverError(f"nameserver {item!r}: give an IP address, not a name") from None
        servers.append((host, port))
    return servers


def _port(item: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise NameserverError(f"nameserver {item!r}: the port must be a number from 1 to 65535")
    return int(text)


def make_resolver(nameservers: str = "", *, timeout: float = 5.0) -> dns.resolver.Resolver:
    """A resolver asking the given servers (`host[:port],…`), or the system's when empty.

    dnspython's Resolver takes one port for all servers; servers on different ports are
    given as Nameserver objects, which carry their own.
    """
    servers = parse_nameservers(nameservers)
    if not servers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 2.0)
    return resolver
