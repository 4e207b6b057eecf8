"""Test zones for the sender-domain check: one good domain and one broken in each way that matters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sendwell.delivery import dkim
from tests.conftest import make_settings

SENDING_IP = "192.0.2.10"


def dkim_value(pem: bytes, domain: str = "x.example") -> str:
    """The TXT value (quoted strings) of the DKIM record for this key."""
    return dkim.dns_record(domain=domain, selector="sendwell", private_key_pem=pem).partition(" TXT ")[2]


def domain_zones(key: bytes, other_key: bytes) -> dict[str, str]:
    good_dkim = dkim_value(key)
    spf = f'"v=spf1 ip4:{SENDING_IP} -all"'
    dmarc = '"v=DMARC1; p=reject; rua=mailto:dmarc@{d}"'

    def zone(d: str, *, spf_line: str | None = f"@ TXT {spf}", dkim_line: str | None = f"sendwell._domainkey TXT {good_dkim}",
             dmarc_line: str | None = None, extra: str = "") -> str:
        lines = [spf_line, dkim_line, dmarc_line if dmarc_line is not None else f"_dmarc TXT {dmarc.format(d=d)}",
                 f"@ MX 10 mx.{d}.", "mx A 192.0.2.25", extra]
        return "\n".join(x for x in lines if x) + "\n"

    includes = " ".join(f"include:i{n}.relay.example" for n in range(11))
    return {
        "good.example": zone("good.example", spf_line=f'@ TXT "v=spf1 ip4:{SENDING_IP} include:_spf.relay.example -all"',
                             extra=(f"mail A {SENDING_IP}\n"
                                    '_mta-sts TXT "v=STSv1; id=2026010101"\n'
                                    '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@good.example"')),
        "relay.example": ('_spf TXT "v=spf1 ip4:198.51.100.0/24 -all"\nsmtp A 198.51.100.7\n'
                          + "".join(f'i{n} TXT "v=spf1 -all"\n' for n in range(11))),
        "2.0.192.in-addr.arpa": "10 PTR mail.good.example.\n11 PTR nowhere.good.example.\n",
        "nospf.example": zone("nospf.example", spf_line=None),
        "twospf.example": zone("twospf.example", extra='@ TXT "v=spf1 ip4:198.51.100.9 ~all"'),
        # Longer than one 255-octet string: two strings, joined without a space by receivers.
        "lookups.example": zone("lookups.example", spf_line=f'@ TXT "v=spf1 ip4:{SENDING_IP} {includes[:150]}" '
                                                            f'"{includes[150:]} -all"'),
        "badspf.example": zone("badspf.example", spf_line='@ TXT "v=spf1 ip4:300.1.2.3 -all"'),
        "otherip.example": zone("otherip.example", spf_line='@ TXT "v=spf1 ip4:203.0.113.5 -all"'),
        "mismatch.example": zone("mismatch.example", dkim_line=f"sendwell._domainkey TXT {dkim_value(other_key)}"),
        "nodkim.example": zone("nodkim.example", dkim_line=None),
        "nodmarc.example": zone("nodmarc.example", dmarc_line=""),
        "nothing.example": "@ MX 10 mx.nothing.example.\nmx A 192.0.2.25\n",
        # From news.<d>, signed d=<d>, SPF of news.<d> not naming the sending IP: DMARC passes
        # only through DKIM, which is aligned under adkim=r and not under adkim=s.
        "strict.example": zone("strict.example", dmarc_line='_dmarc TXT "v=DMARC1; p=reject; adkim=s; aspf=s"',
                               extra='news TXT "v=spf1 ip4:203.0.113.5 -all"\nnews MX 10 mx.strict.example.'),
        "relaxed.example": zone("relaxed.example", dmarc_line='_dmarc TXT "v=DMARC1; p=quarantine"',
                                extra='news TXT "v=spf1 ip4:203.0.113.5 -all"\nnews MX 10 mx.relaxed.example.'),
    }


def domain_settings(tmp_path: Path, dns: str, domain: str, key_file: Path, **overrides: Any) -> Any:
    """Settings sending From sales@<domain>, signed d=<domain> with the test key, asking the test DNS."""
    values: dict[str, Any] = dict(
        from_=f"Sales <sales@{domain}>", contact_email=f"sales@{domain}", dkim_domain=domain,
        dkim_key_file=str(key_file), dns_nameservers=dns, dns_timeout=3.0, sending_ips=SENDING_IP,
        smtp_url="smtp://127.0.0.1:2525",
    )
    values.update(overrides)
    return make_settings(tmp_path / "data", **values)
