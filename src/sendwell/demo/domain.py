"""Demo step: the sender-domain check against the demo's own DNS server, before and after publishing the fixes.

The demo has no internet and no Debian DNS server, so it answers DNS itself: a small
authoritative server on 127.0.0.1 (UDP) serving the demo domain's zone from memory. Written
here on dnspython (already a dependency), which parses the queries and the zone and builds
the answers; what dnspython has no part for is the socket loop, a dozen lines. The check
runs unchanged against it, through SENDWELL_DNS_NAMESERVERS, exactly as against a real
server: first on a zone with only an MX record, then again after the records the first check
asked for were published in the zone.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

from sendwell.config import Settings
from sendwell.deliverability.check import BLOCKING, INFO, PASS, WARNING, Record, check_domain

SENDING_IP = "127.0.0.1"  # the demo's mail really leaves from loopback, to its own SMTP server


class LoopbackDns:
    """An authoritative DNS server on 127.0.0.1 answering from zones held in memory (UDP only)."""

    def __init__(self, zones: dict[str, str]) -> None:
        self.zones = {dns.name.from_text(name): dns.zone.from_text(text, origin=name, relativize=False,
                                                                   check_origin=False)
                      for name, text in zones.items()}
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="demo-dns", daemon=True)

    def __enter__(self) -> LoopbackDns:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def publish(self, record: Record) -> None:
        """Add a record to its zone, as an operator does at the DNS host."""
        name = dns.name.from_text(record.name)
        rdtype = dns.rdatatype.from_text(record.type)
        with self._lock:
            zone = self._zone_for(name)
            if zone is None:
                raise ValueError(f"{record.name} is in none of the demo's zones")
            node = zone.find_node(name, create=True)
            rdataset = node.find_rdataset(dns.rdataclass.IN, rdtype, create=True)
            rdataset.add(dns.rdata.from_text(dns.rdataclass.IN, rdtype, record.value, origin=dns.name.root), 300)

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        matches = [origin for origin in self.zones if name.is_subdomain(origin)]
        return self.zones[max(matches, key=len)] if matches else None

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            try:
                reply = self._answer(dns.message.from_wire(wire))
            except dns.exception.DNSException:
                continue  # not a DNS query: no answer, as a real server drops garbage
            self._sock.sendto(reply.to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        question = query.question[0]
        with self._lock:
            zone = self._zone_for(question.name)
            if zone is None:
                reply.set_rcode(dns.rcode.REFUSED)
                return reply
            reply.flags |= dns.flags.AA
            node = zone.get_node(question.name)
            if node is None:
                # A name with names below it exists (empty non-terminal, RFC 8020): no data, not NXDOMAIN.
                if not any(n != question.name and n.is_subdomain(question.name) for n in zone.nodes):
                    reply.set_rcode(dns.rcode.NXDOMAIN)
                return reply
            rdataset = node.get_rdataset(dns.rdataclass.IN, question.rdtype)
            if rdataset is not None:
                reply.answer.append(dns.rrset.from_rdata_list(question.name, rdataset.ttl, list(rdataset)))
        return reply


def _zones(domain: str) -> dict[str, str]:
    """The demo domain before anything for mail is published: an MX for bounces, and reverse DNS."""
    return {
        domain: f"{domain}. 300 IN MX 10 mail.{domain}.\nmail.{domain}. 300 IN A {SENDING_IP}\n",
        "127.in-addr.arpa": f"1.0.0.127.in-addr.arpa. 300 IN PTR mail.{domain}.\n",
    }


def _short(record: Record, width: int = 100) -> str:
    text = record.text()
    return text if len(text) <= width else text[: width - 1] + "…"


def show_domain_check(settings: Settings, say: Any = print) -> dict[str, Any]:
    """Check the demo domain, publish the records the check asks for, and check again."""
    domain = settings.sender_domain
    with LoopbackDns(_zones(domain)) as server:
        demo = settings.replace(dns_nameservers=server.address, dns_timeout=2.0, sending_ips=SENDING_IP)
        before = check_domain(demo)
        fixes = [f.fix for f in before.blocking if f.fix is not None]
        for record in fixes:
            server.publish(record)
        after = check_domain(demo)
    say(f"16. Sender domain {domain}, checked against the demo's own DNS server on {server.address}: "
        f"{len(before.blocking)} blocking ({', '.join(f.id for f in before.blocking)}); records to publish:")
    for record in fixes:
        say(f"      {_short(record)}")
    counts = {s: len(after.of(s)) for s in (BLOCKING, WARNING, INFO, PASS)}
    say(f"    published in the zone, checked again: "
        f"{'ready for bulk sending' if after.ok and after.complete else 'still blocked'} "
        f"({counts[PASS]} passed, {counts[WARNING]} warnings, {counts[INFO]} info, {counts[BLOCKING]} blocking)")
    return {"domain": domain, "nameserver": server.address,
            "before": [f.id for f in before.blocking], "published": [r.text() for r in fixes],
            "after_ok": after.ok and after.complete, "after": counts}
