"""The cached sender-domain check, and the send gate that uses it (docs/delivery.md, "Sender domain").

The gate, run when a campaign starts or is scheduled (sendwell.flows):
- a marketing campaign (any kind but transactional) whose audience is at or above
  SENDWELL_BULK_THRESHOLD recipients is refused while the check has a blocking finding (no
  SPF, DKIM key missing or wrong, no DMARC, DMARC alignment failing …), with the records to
  publish, like a blocking compliance lint finding; below the threshold, and for
  transactional mail, the same findings are warnings;
- DNS not answering is a warning, never a pass and never a block: an outage of the resolver
  must not stop every send, and nothing was concluded about the records;
- it is skipped where no mailbox provider will ever judge the domain: SMTP in capture mode
  (mail goes to files), or a From domain under a name reserved by RFC 2606 / RFC 6761
  (.example, .test, .invalid, .localhost, example.com …) looked up in public DNS, where such
  names cannot exist. With SENDWELL_DNS_NAMESERVERS set (split-horizon DNS, tests), a reserved
  name is checked like any other, since that server may serve it.
A result is reused while younger than SENDWELL_DOMAIN_CHECK_TTL; an older one is checked again
when a campaign starts. A check DNS did not fully answer is not kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.content.lint import ERROR, WARNING, Finding, LintReport
from sendwell.content.service import ComplianceError
from sendwell.db.models import Campaign, CampaignKind, DomainCheck
from sendwell.deliverability.check import (
    BLOCKING,
    DomainReport,
    check_domain,
    relay_host,
)
from sendwell.deliverability.check import WARNING as CHECK_WARNING
from sendwell.i18n.messages import N_, english, message
from sendwell.segments.service import count_segment

log = logging.getLogger("sendwell.deliverability")

_RESERVED_TLDS = {"example", "test", "invalid", "localhost", "local"}  # RFC 2606, RFC 6761, RFC 6762
_RESERVED_NAMES = {"example.com", "example.net", "example.org", "home.arpa"}


def reserved_name(domain: str) -> bool:
    labels = domain.lower().rstrip(".").split(".")
    return labels[-1] in _RESERVED_TLDS or any(".".join(labels[i:]) in _RESERVED_NAMES for i in range(len(labels)))


def _key_material(path: str) -> str:
    if not path:
        return ""
    try:
        return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable:{exc.strerror}"


def inputs_key(settings: Settings, domain: str) -> str:
    """What a check's result depends on, hashed: a changed key, selector, IP or relay is a new check."""
    parts = [domain.lower(), settings.dkim_domain.lower(), settings.dkim_selector, _key_material(settings.dkim_key_file),
             settings.dkim_ed25519_selector, _key_material(settings.dkim_ed25519_key_file), settings.sending_ips,
             relay_host(settings), settings.dns_nameservers, ",".join(settings.inbound_domain_list),
             settings.inbound_host]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def cached_check(session: Session, settings: Settings, *, domain: str | None = None, now: datetime | None = None,
                 max_age: float | None = None) -> DomainReport:
    """The stored result when younger than `max_age` seconds (default SENDWELL_DOMAIN_CHECK_TTL), else a new check.

    max_age=0 always checks. A complete result is stored; one DNS did not fully answer is not.
    """
    now = now or datetime.now(timezone.utc)
    domain = (domain or settings.sender_domain).lower().rstrip(".")
    max_age = settings.domain_check_ttl if max_age is None else max_age
    key = inputs_key(settings, domain)
    row = session.get(DomainCheck, key)
    if row is not None and max_age > 0 and now - row.checked_at <= timedelta(seconds=max_age):
        return DomainReport.from_dict(row.report)
    report = check_domain(settings, domain=domain, now=now)
    if report.complete:
        if row is None:
            row = DomainCheck(key=key, domain=domain)
            session.add(row)
        row.checked_at, row.blocking, row.report = now, not report.ok, report.as_dict()
        session.flush()
    return report


def last_check(session: Session, settings: Settings, *, domain: str | None = None) -> DomainReport | None:
    """The stored result for the current settings, however old (None when never checked)."""
    domain = (domain or settings.sender_domain).lower().rstrip(".")
    row = session.get(DomainCheck, inputs_key(settings, domain))
    return DomainReport.from_dict(row.report) if row is not None else None


@dataclass
class GateResult:
    skipped: str = ""  # why the check did not run ("" when it ran)
    report: DomainReport | None = None
    audience: int = 0
    bulk: bool = False  # enforced: marketing at or above the bulk threshold
    findings: list[Finding] = field(default_factory=list)  # as lint findings: errors block

    @property
    def blocked(self) -> bool:
        return any(f.blocking for f in self.findings)


def skip_message(settings: Settings) -> dict[str, Any] | None:
    """Why the send gate does not check the domain in this setup, as a message (None when it checks)."""
    if settings.smtp_url == "capture":
        return message(N_("SMTP is in capture mode: mail is written to files, no mailbox provider judges the domain"))
    if not settings.dns_nameservers and reserved_name(settings.sender_domain):
        return message(N_("%(domain)s is a reserved name (RFC 2606 / 6761) that public DNS never serves: nothing "
                          "to check"), domain=settings.sender_domain)
    return None


def skip_reason(settings: Settings) -> str:
    """Why the send gate does not check the domain in this setup ("" when it checks)."""
    why = skip_message(settings)
    return english(**why) if why else ""


def gate(session: Session, *, settings: Settings, campaign: Campaign, now: datetime | None = None) -> GateResult:
    """The sender-domain findings for starting `campaign`: errors when it must not be sent."""
    reason = skip_reason(settings)
    if reason:
        return GateResult(skipped=reason)
    result = GateResult()
    report = result.report = cached_check(session, settings, now=now)
    if campaign.kind != CampaignKind.TRANSACTIONAL.value:
        result.audience = count_segment(session, expression=campaign.segment_expr, now=now)["reachable"]
        result.bulk = result.audience >= settings.bulk_threshold
    for f in report.findings:
        if f.severity not in (BLOCKING, CHECK_WARNING):
            continue
        severity = ERROR if f.severity == BLOCKING and result.bulk else WARNING
        fix = f" Publish: {f.fix.text()}" if f.fix else ""
        scope = (f" (campaign of {result.audience} recipients, at or above SENDWELL_BULK_THRESHOLD="
                 f"{settings.bulk_threshold})" if severity == ERROR else "")
        result.findings.append(Finding(f"sender-domain-{f.id}", severity, f"{report.domain}: {f.message}{scope}.{fix}",
                                       23))
    return result


def assert_domain_ready(session: Session, *, settings: Settings, campaign: Campaign,
                        now: datetime | None = None) -> GateResult:
    """The send path's sender-domain gate: ComplianceError when a bulk campaign's domain is not ready."""
    result = gate(session, settings=settings, campaign=campaign, now=now)
    if result.skipped:
        log.debug("sender-domain check skipped for campaign %s: %s", campaign.id, result.skipped)
    elif result.blocked:
        raise ComplianceError(LintReport(campaign_id=campaign.id, findings=result.findings))
    for finding in result.findings:
        log.warning("campaign %s: %s", campaign.id, finding.line())
    return result
