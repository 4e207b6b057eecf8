"""DMARC aggregate reports kept (db.models DmarcReport / DmarcRecord): de-duplication, the per-source table, alerts."""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.db.models import DmarcRecord, DmarcReport
from sendwell.feedback.dmarc import (
    Record,
    Report,
    ReportRefused,
    find_report,
    looks_like_report,
)
from sendwell.feedback.signals import provider_of
from sendwell.i18n.messages import N_, english, message
from sendwell.insight.alerts import QUARANTINED, REFUSED, REPORTED, raise_sender_alert

log = logging.getLogger(__name__)

# A source "fails" below this share of its mail passing (aligned) — forwarding and mailing lists
# break some of any sender's mail, so a few percent is normal.
PASS_TARGET = 0.9
# A source with at least this many mails and this share of a domain's reported mail is taken to
# be ours even when SENDWELL_SENDING_IPS does not name it: nobody else sends that much as us.
HIGH_VOLUME = 100
HIGH_SHARE = 0.1
ALERT_WINDOW_DAYS = 7  # the alert judges a source over this many days of reports
# Reporting addresses whose domain does not name the provider (signals.provider_of knows the rest).
_REPORTERS = {"microsoft.com": "Microsoft", "yahoo-inc.com": "Yahoo"}


@dataclass(frozen=True)
class Ingested:
    """What happened to one mail that carried (or claimed to carry) a DMARC report."""

    action: str  # dmarc_stored | dmarc_duplicate | dmarc_foreign | dmarc_refused
    detail: str = ""
    report_id: int | None = None


def our_domains(settings: Settings) -> set[str]:
    """The From and DKIM domains Sendwell sends as: the only domains whose reports are kept."""
    return {d.strip().lower().rstrip(".") for d in (settings.sender_domain, settings.dkim_domain) if d.strip()}


def _within(domain: str, ours: set[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in ours)


def _covers(domain: str, ours: set[str]) -> bool:
    # The DMARC record can sit at the organisational domain above ours (From: news.x.com, record
    # at x.com); a bare suffix ("com") never holds one.
    return _within(domain, ours) or ("." in domain and any(d.endswith("." + domain) for d in ours))


def ingest_mail(session: Session, *, raw: bytes, settings: Settings, source: str,
                now: datetime | None = None) -> Ingested | None:
    """Store the DMARC aggregate report a mail carries; None when it carries none (route it as usual).

    Hostile or unreadable reports and reports about other domains store nothing and say why in
    a log line. The same report twice (org + report id) is stored once. Flushes, never commits.
    """
    # A file given to `feedback ingest` (source "eml") may be the report itself rather than a mail.
    file = source == "eml"
    if not looks_like_report(raw, file=file):
        return None
    try:
        report = find_report(raw, file=file)
    except ReportRefused as exc:
        log.warning("DMARC report refused (%s): %s", source, exc)
        return Ingested("dmarc_refused", str(exc))
    if report is None:
        return None
    ours = our_domains(settings)
    if not _covers(report.domain, ours):
        log.warning("DMARC report %s from %s ignored: it is about %s, not %s", report.report_id, report.org_name,
                    report.domain, ", ".join(sorted(ours)))
        return Ingested("dmarc_foreign", f"the report is about {report.domain}")
    return _store(session, report, ours, source, now or datetime.now(timezone.utc), settings)


def _store(session: Session, report: Report, ours: set[str], source: str, now: datetime,
           settings: Settings) -> Ingested:
    org = report.org_name.strip().lower()
    existing = session.scalar(select(DmarcReport.id).where(DmarcReport.org_name == org,
                                                           DmarcReport.report_id == report.report_id))
    if existing is not None:
        return Ingested("dmarc_duplicate", f"{org} report {report.report_id} is already stored", existing)
    # Rows whose From is another domain (the organisational domain's other mail) are not ours to show.
    kept = [r for r in report.records if _within(r.header_from, ours)]
    row = DmarcReport(org_name=org, org_email=report.org_email, report_id=report.report_id, domain=report.domain,
                      policy=report.policy, begin_at=report.begin, end_at=report.end, received_at=now, source=source,
                      messages=sum(r.count for r in kept))
    try:
        with session.begin_nested():  # two readers of the same mailbox racing: one row, the other a duplicate
            session.add(row)
            session.flush()
    except IntegrityError:
        return Ingested("dmarc_duplicate", f"{org} report {report.report_id} is already stored")
    session.add_all(_record_row(row.id, r) for r in kept)
    session.flush()
    log.info("DMARC report %s from %s stored: %d records, %d mails", report.report_id, org, len(kept), row.messages)
    check_sources(session, settings=settings, ips={r.source_ip for r in kept}, reporter=report.org_email or org,
                  now=now)
    return Ingested("dmarc_stored", f"{len(kept)} records", row.id)


def _record_row(report_pk: int, r: Record) -> DmarcRecord:
    return DmarcRecord(
        report_id=report_pk, source_ip=r.source_ip, count=r.count, disposition=r.disposition,
        dkim_aligned=r.dkim_aligned, spf_aligned=r.spf_aligned, dkim_pass=r.dkim_pass, spf_pass=r.spf_pass,
        header_from=r.header_from, envelope_from=r.envelope_from,
        auth={"dkim": [[a.domain, a.result, a.detail] for a in r.dkim],
              "spf": [[a.domain, a.result, a.detail] for a in r.spf], "reasons": r.reasons},
    )


# --- the per-source table ----------------------------------------------------------------

@dataclass
class SourceRow:
    """What the reports say about one sending IP over a period."""

    source_ip: str
    messages: int = 0
    spf_pass: int = 0
    dkim_pass: int = 0
    spf_aligned: int = 0
    dkim_aligned: int = 0
    dmarc_pass: int = 0  # aligned SPF or aligned DKIM: what DMARC judges
    dispositions: Counter[str] = field(default_factory=Counter)
    header_from: Counter[str] = field(default_factory=Counter)
    dkim_domains: Counter[str] = field(default_factory=Counter)  # d= of verified signatures
    envelope_from: Counter[str] = field(default_factory=Counter)
    reporters: set[str] = field(default_factory=set)
    known: bool = False  # named in SENDWELL_SENDING_IPS

    def rate(self, count: int) -> float:
        return count / self.messages if self.messages else 0.0

    @property
    def failing(self) -> bool:
        return self.messages > 0 and self.rate(self.dmarc_pass) < PASS_TARGET

    @property
    def dkim_failing(self) -> bool:
        return self.messages > 0 and self.rate(self.dkim_aligned) < PASS_TARGET

    def to_json(self) -> dict[str, Any]:
        return {
            "source_ip": self.source_ip, "messages": self.messages,
            "spf_pass": self.rate(self.spf_pass), "dkim_pass": self.rate(self.dkim_pass),
            "spf_aligned": self.rate(self.spf_aligned), "dkim_aligned": self.rate(self.dkim_aligned),
            "dmarc_pass": self.rate(self.dmarc_pass), "dispositions": dict(self.dispositions),
            "header_from": sorted(self.header_from), "reporters": sorted(self.reporters),
            "known_sending_ip": self.known, "failing": self.failing,
        }


@dataclass
class SourceTable:
    days: int
    reports: int
    sources: list[SourceRow]

    @property
    def messages(self) -> int:
        return sum(s.messages for s in self.sources)


def sending_networks(settings: Settings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """SENDWELL_SENDING_IPS (comma-separated addresses or networks) when that setting exists and is set."""
    networks = []
    for item in str(getattr(settings, "sending_ips", "") or "").split(","):
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            continue  # the setting's own validation names a bad entry; here it is only a hint
    return networks


def _is_known(ip: str, networks: list[Any]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address.version == n.version and address in n for n in networks)


def source_table(session: Session, *, settings: Settings, days: int = 30, now: datetime | None = None,
                 ips: set[str] | None = None) -> SourceTable:
    """Per source IP over the reports whose period ended in the last `days` days, most mail first."""
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    query = (select(DmarcRecord, DmarcReport.org_name)
             .join(DmarcReport, DmarcReport.id == DmarcRecord.report_id)
             .where(DmarcReport.end_at >= since))
    if ips is not None:
        query = query.where(DmarcRecord.source_ip.in_(sorted(ips)))
    rows: dict[str, SourceRow] = {}
    reports: set[int] = set()
    networks = sending_networks(settings)
    for record, org in session.execute(query.order_by(DmarcRecord.id)):
        reports.add(record.report_id)
        row = rows.get(record.source_ip)
        if row is None:
            row = rows[record.source_ip] = SourceRow(record.source_ip, known=_is_known(record.source_ip, networks))
        n = record.count
        row.messages += n
        row.spf_pass += n if record.spf_pass else 0
        row.dkim_pass += n if record.dkim_pass else 0
        row.spf_aligned += n if record.spf_aligned else 0
        row.dkim_aligned += n if record.dkim_aligned else 0
        row.dmarc_pass += n if record.spf_aligned or record.dkim_aligned else 0
        row.dispositions[record.disposition] += n
        row.header_from[record.header_from] += n
        row.envelope_from[record.envelope_from] += n
        for domain, result, _ in (record.auth or {}).get("dkim", []):
            if result == "pass" and domain:
                row.dkim_domains[domain] += n
        row.reporters.add(org)
    ordered = sorted(rows.values(), key=lambda r: (-r.messages, r.source_ip))
    return SourceTable(days, len(reports), ordered)


# --- alerts --------------------------------------------------------------------------------

def sends_our_mail(row: SourceRow, domain_total: int) -> bool:
    """A known sending IP, or a source carrying a large share of the reported mail."""
    return row.known or (row.messages >= HIGH_VOLUME and domain_total > 0
                         and row.messages / domain_total >= HIGH_SHARE)


FIX_DKIM_SIGNED = N_("source %(ip)s fails DKIM alignment: it signs with d=%(signed)s; sign with d=%(domain)s")
FIX_DKIM = N_("source %(ip)s fails DKIM alignment: sign with d=%(domain)s")
FIX_SPF = N_("add %(ip)s to the SPF record of %(envelope)s")
FIX_SPF_BOUNCE = N_("add %(ip)s to the SPF record of %(envelope)s and use a bounce domain under %(domain)s")
FIX_BOTH = N_("%(dkim)s; %(spf)s")
FIX_DMARC = N_("source %(ip)s fails DMARC for %(domain)s")
YOUR_FROM_DOMAIN = N_("your From domain")


def source_fix(row: SourceRow) -> dict[str, Any]:
    """What the operator should change so this source's mail passes DMARC, as a message."""
    ip = row.source_ip
    known = row.header_from.most_common(1)[0][0] if row.header_from else english(YOUR_FROM_DOMAIN)
    from_domain: Any = known if row.header_from else message(YOUR_FROM_DOMAIN)
    dkim = spf = None
    if row.dkim_failing:
        signed = [d for d in row.dkim_domains if d != known and not d.endswith("." + known)]
        dkim = (message(FIX_DKIM_SIGNED, ip=ip, signed=signed[0], domain=from_domain) if signed
                else message(FIX_DKIM, ip=ip, domain=from_domain))
    if row.rate(row.spf_aligned) < PASS_TARGET:
        envelope = row.envelope_from.most_common(1)[0][0] if row.envelope_from else ""
        if envelope and not (envelope == known or envelope.endswith("." + known)):
            spf = message(FIX_SPF_BOUNCE, ip=ip, envelope=envelope, domain=from_domain)
        else:
            spf = message(FIX_SPF, ip=ip, envelope=envelope or from_domain)
    if dkim and spf:
        return message(FIX_BOTH, dkim=dkim, spf=spf)
    return dkim or spf or message(FIX_DMARC, ip=ip, domain=from_domain)


def fix_for_source(row: SourceRow) -> str:
    """What the operator should change so this source's mail passes DMARC, in words."""
    return english(**source_fix(row))


def reporter_provider(reporter: str) -> str:
    """The mailbox provider that sent a report, for the per-provider sender alert."""
    domain = reporter.strip().lower().rpartition("@")[2]
    return _REPORTERS.get(domain) or provider_of(domain)


def check_sources(session: Session, *, settings: Settings, ips: set[str], reporter: str,
                  now: datetime | None = None) -> list[SourceRow]:
    """Raise the per-provider sender alert for each of `ips` that sends our mail and fails alignment.

    Judged over ALERT_WINDOW_DAYS of reports, not one report: one provider's day can be small.
    """
    now = now or datetime.now(timezone.utc)
    table = source_table(session, settings=settings, days=ALERT_WINDOW_DAYS, now=now)
    raised = []
    for row in table.sources:
        if row.source_ip not in ips or not (row.failing or row.dkim_failing):
            continue
        if not sends_our_mail(row, table.messages):
            continue
        rejected = row.dispositions.get("reject", 0) + row.dispositions.get("quarantine", 0)
        # Disposition `none`: the provider delivered the mail and only reports the failure.
        outcome = (REFUSED if row.dispositions.get("reject", 0) else
                   QUARANTINED if row.dispositions.get("quarantine", 0) else REPORTED)
        domain = row.header_from.most_common(1)[0][0] if row.header_from else None
        fix = source_fix(row)
        raise_sender_alert(
            session, provider=reporter_provider(reporter), topic=f"dmarc:{row.source_ip}", fix=english(**fix),
            fix_message=fix, outcome=outcome,
            status=None, severity="critical" if rejected else "warning", domain=domain, source="dmarc",
            reason=(f"DMARC reports: {row.source_ip} sent {row.messages} mails, {row.rate(row.dkim_aligned):.0%} "
                    f"DKIM-aligned, {row.rate(row.dmarc_pass):.0%} passing DMARC, {rejected} quarantined or rejected"),
            now=now)
        raised.append(row)
    return raised
