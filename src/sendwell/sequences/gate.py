"""The sender-domain gate for step mails: the campaigns' cached SPF/DKIM/DMARC check, with its exceptions.

The same check, cache (SENDWELL_DOMAIN_CHECK_TTL) and skips as the campaigns' gate
(sendwell.deliverability.service): none in SMTP capture mode or for a reserved name looked up
in public DNS; DNS not answering is a warning, never a block. A sequence has no audience to
hold against SENDWELL_BULK_THRESHOLD (it sends for as long as it runs), so any blocking
finding holds its mail steps: the contacts wait at the step (`sender_domain`), never skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.deliverability.check import BLOCKING, WARNING
from sendwell.deliverability.service import cached_check, skip_reason

log = logging.getLogger("sendwell.sequences")

SENDER_DOMAIN = "sender_domain"  # an enrollment's wait_reason while the gate holds its mail step


@dataclass
class DomainGate:
    skipped: str = ""  # why the check did not run ("" when it ran)
    blocked: bool = False
    findings: list[dict[str, Any]] = field(default_factory=list)  # code, severity, message (with the record)


def sender_domain_gate(session: Session, *, settings: Settings, now: datetime | None = None) -> DomainGate:
    """The sender domain's findings for step mails; `blocked` when any is blocking."""
    reason = skip_reason(settings)
    if reason:
        return DomainGate(skipped=reason)
    report = cached_check(session, settings, now=now)
    gate = DomainGate(blocked=not report.ok)
    for f in report.findings:
        if f.severity in (BLOCKING, WARNING):
            fix = f" Publish: {f.fix.text()}" if f.fix else ""
            gate.findings.append({"code": f"sender-domain-{f.id}", "severity": f.severity,
                                  "message": f"{report.domain}: {f.message}.{fix}"})
    return gate


def sender_domain_findings(session: Session, *, settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """What creating or resuming a sequence reports: blocking findings hold its mail steps until fixed."""
    return sender_domain_gate(session, settings=settings, now=now).findings


class LazyGate:
    """The gate checked once per advance, on the first mail step due (DNS is asked at most once)."""

    def __init__(self, session: Session, settings: Settings, now: datetime) -> None:
        self._args = (session, settings, now)
        self._gate: DomainGate | None = None

    def holds(self) -> bool:
        if self._gate is None:
            session, settings, now = self._args
            self._gate = sender_domain_gate(session, settings=settings, now=now)
            for finding in self._gate.findings:
                log.warning("sequence mail steps: %s %s", finding["code"], finding["message"])
        return self._gate.blocked
