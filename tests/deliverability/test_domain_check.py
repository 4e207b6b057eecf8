"""The sender-domain check against a real authoritative DNS server (NSD) serving good and broken zones."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendwell.deliverability.check import (
    BLOCKING,
    PASS,
    WARNING,
    DomainReport,
    aligned,
    check_domain,
)
from sendwell.delivery import dkim
from tests.deliverability.zones import SENDING_IP, domain_settings
from tests.dnsserver import dns_server, free_port, needs_nsd

pytestmark = [pytest.mark.slow, needs_nsd]


def run(tmp_path: Path, dns: str, keys: tuple[Path, bytes, bytes], domain: str, **overrides: object) -> DomainReport:
    return check_domain(domain_settings(tmp_path, dns, domain, keys[0], **overrides))


def by_id(report: DomainReport) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.findings:
        out.setdefault(f.id, []).append(f.severity)
    return out


def finding(report: DomainReport, id: str):
    return next(f for f in report.findings if f.id == id)


def test_a_good_domain_passes_every_check(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "good.example")
    assert report.ok and report.complete, [f.line() for f in report.findings]
    ids = by_id(report)
    for id in ("spf-valid", "spf-authorised", "dkim-key-match", "dmarc-policy", "dkim-alignment", "spf-alignment",
               "dmarc-alignment", "bounce-mx", "ptr-fcrdns", "mta-sts", "tls-rpt"):
        assert ids[id] == [PASS], (id, [f.line() for f in report.findings])
    assert report.facts["dmarc"]["policy"] == "reject"
    assert report.facts["spf"]["lookups"] == 1


def test_no_spf_blocks_with_the_record_to_publish(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "nospf.example")
    f = finding(report, "spf-missing")
    assert f.severity == BLOCKING
    assert f.fix is not None and f.fix.text() == f'nospf.example. TXT "v=spf1 ip4:{SENDING_IP} -all"'
    assert not report.ok
    # DKIM still aligns and verifies: DMARC itself would pass, and says so.
    assert by_id(report)["dmarc-alignment"] == [PASS]


def test_two_spf_records_block_and_the_fix_merges_them(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "twospf.example")
    f = finding(report, "spf-multiple")
    assert f.severity == BLOCKING and "2 SPF records" in f.message
    assert f.fix and f.fix.value == f'"v=spf1 ip4:{SENDING_IP} ip4:198.51.100.9 -all"' or f.fix.value == (
        f'"v=spf1 ip4:198.51.100.9 ip4:{SENDING_IP} -all"')


def test_more_than_ten_lookups_blocks(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "lookups.example")
    f = finding(report, "spf-lookups")
    assert f.severity == BLOCKING and "11 DNS look-ups" in f.message
    assert f.fix and f.fix.value == f'"v=spf1 ip4:{SENDING_IP} -all"'


def test_an_spf_syntax_error_names_the_term(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "badspf.example")
    f = finding(report, "spf-syntax")
    assert f.severity == BLOCKING and "ip4:300.1.2.3" in f.message


def test_spf_not_naming_the_sending_ip_blocks(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "otherip.example")
    f = finding(report, "spf-not-authorised")
    assert f.severity == BLOCKING and f"{SENDING_IP} (fail)" in f.message
    assert f.fix and f.fix.value == f'"v=spf1 ip4:203.0.113.5 ip4:{SENDING_IP} -all"'


def test_a_dkim_key_mismatch_blocks_with_the_right_key(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "mismatch.example")
    f = finding(report, "dkim-mismatch")
    assert f.severity == BLOCKING
    assert f.fix and f.fix.name == "sendwell._domainkey.mismatch.example."
    assert dkim.public_key_b64(keys[1])[:200] in f.fix.value.replace('" "', "")
    # SPF passes aligned, so DMARC still passes through SPF.
    assert by_id(report)["dmarc-alignment"] == [PASS]


def test_no_dkim_record_blocks(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "nodkim.example")
    assert finding(report, "dkim-missing").severity == BLOCKING


def test_no_dmarc_blocks_with_a_starting_record(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "nodmarc.example")
    f = finding(report, "dmarc-missing")
    assert f.severity == BLOCKING
    assert f.fix and f.fix.text() == '_dmarc.nodmarc.example. TXT "v=DMARC1; p=none; rua=mailto:dmarc@nodmarc.example"'


def test_no_spf_and_no_dkim_record_fails_dmarc(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "nothing.example")
    ids = by_id(report)
    assert ids["spf-missing"] == [BLOCKING] and ids["dkim-missing"] == [BLOCKING]
    assert ids["dmarc-missing"] == [BLOCKING] and ids["dmarc-alignment"] == [BLOCKING]


def test_strict_dkim_alignment_fails_where_relaxed_passes(tmp_path: Path, dns: str, keys) -> None:
    # From news.<d>, DKIM d=<d>; the DMARC record is on the organisational domain <d>.
    strict = run(tmp_path, dns, keys, "strict.example", from_="Sales <sales@news.strict.example>",
                 contact_email="sales@news.strict.example")
    assert strict.facts["dmarc"]["at"] == "strict.example"
    assert by_id(strict)["dkim-alignment"] == [WARNING]
    assert by_id(strict)["dmarc-alignment"] == [BLOCKING]
    fix = finding(strict, "dkim-alignment").fix
    assert fix and fix.text() == '_dmarc.strict.example. TXT "v=DMARC1; p=reject; adkim=r; aspf=s"'

    relaxed = run(tmp_path, dns, keys, "relaxed.example", from_="Sales <sales@news.relaxed.example>",
                  contact_email="sales@news.relaxed.example")
    assert by_id(relaxed)["dkim-alignment"] == [PASS]
    assert by_id(relaxed)["dmarc-alignment"] == [PASS]


def test_alignment_modes() -> None:
    assert aligned("news.bright.example", "bounce.bright.example", "r")
    assert not aligned("news.bright.example", "bounce.bright.example", "s")
    assert aligned("bright.co.uk", "mail.bright.co.uk", "r")
    assert not aligned("bright.co.uk", "other.co.uk", "r")  # co.uk is a public suffix


def test_reverse_dns_forward_confirmed_or_not(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "good.example", sending_ips=f"{SENDING_IP},192.0.2.11,192.0.2.12")
    rows = [(f.severity, f.message.split()[0]) for f in report.findings if f.id.startswith("ptr")]
    assert (PASS, SENDING_IP) in rows
    assert (WARNING, "192.0.2.11") in rows  # PTR → nowhere.good.example, which has no address
    missing = finding(report, "ptr-missing")
    assert missing.fix and missing.fix.text() == "12.2.0.192.in-addr.arpa. PTR mail.good.example."


def test_relay_named_by_its_include_when_ips_are_unknown(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "good.example", sending_ips="", smtp_url="smtp://smtp.relay.example:587")
    f = finding(report, "spf-relay")
    assert f.severity == PASS and "_spf.relay.example" in f.message
    other = run(tmp_path, dns, keys, "otherip.example", sending_ips="", smtp_url="smtp://smtp.relay.example:587")
    assert finding(other, "spf-relay").severity == WARNING


def test_dns_unreachable_is_a_warning_not_a_pass(tmp_path: Path, keys) -> None:
    silent = f"127.0.0.1:{free_port()}"  # nothing listens there
    report = run(tmp_path, silent, keys, "good.example", dns_timeout=1.0)
    assert not report.complete
    assert report.findings[0].id == "dns-unreachable" and report.findings[0].severity == WARNING
    assert not any(f.severity == PASS and f.id.startswith(("spf", "dkim", "dmarc")) for f in report.findings)
    assert report.ok  # an outage does not block by itself


def test_report_round_trips_through_json(tmp_path: Path, dns: str, keys) -> None:
    report = run(tmp_path, dns, keys, "nospf.example")
    again = DomainReport.from_dict(report.as_dict())
    assert again.findings == report.findings and again.ok == report.ok


def test_an_ed25519_key_is_checked_beside_the_rsa_key(tmp_path: Path, keys) -> None:
    ed, other_ed = dkim.generate_private_key("ed25519"), dkim.generate_private_key("ed25519")
    ed_file = tmp_path / "ed.pem"
    ed_file.write_bytes(ed)

    def value(pem: bytes, selector: str) -> str:
        return dkim.dns_record(domain="ed.example", selector=selector, private_key_pem=pem).partition(" TXT ")[2]

    base = f'@ TXT "v=spf1 ip4:{SENDING_IP} -all"\n_dmarc TXT "v=DMARC1; p=reject"\nsendwell._domainkey TXT {value(keys[1], "sendwell")}\n'
    for published, expected in ((ed, PASS), (other_ed, BLOCKING)):
        with dns_server({"ed.example": base + f"sendwell-ed._domainkey TXT {value(published, 'sendwell-ed')}\n"}) as dns:
            report = run(tmp_path, dns, keys, "ed.example", dkim_ed25519_key_file=str(ed_file))
        rows = {(f.id, f.severity) for f in report.findings if f.message.startswith("sendwell-ed._domainkey")}
        assert rows == {("dkim-key-match" if expected == PASS else "dkim-mismatch", expected)}, rows
        assert ("dkim-key-match", PASS) in {(f.id, f.severity) for f in report.findings
                                            if f.message.startswith("sendwell._domainkey")}
