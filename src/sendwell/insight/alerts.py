"""Spike alerts on unsubscribes, complaints and hard bounces, and the campaign circuit breaker."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Alert, Campaign, CampaignStatus, Event
from sendwell.i18n.messages import N_, coded, english, message, plain
from sendwell.insight.rates import DIMENSIONS, Rates, breakdown, campaign_rates
from sendwell.webhooks.service import emit_alert


@dataclass(frozen=True)
class Thresholds:
    """COMPLIANCE rows 25 and 29, configurable through settings."""

    unsubscribe_warn: float = 0.005
    unsubscribe_critical: float = 0.010
    complaint_warn: float = 0.001
    complaint_critical: float = 0.003
    hard_bounce_warn: float = 0.05
    hard_bounce_critical: float = 0.10
    baseline_factor: float = 2.0  # warn above 2 × the median of the last comparable sends
    baseline_sends: int = 10
    baseline_min_unsubscribes: int = 5
    baseline_min_delivered: int = 500
    min_sample: int = 100  # delivered mails before any rate is judged mid-send

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        values = {name: getattr(settings, f"alert_{name}") for name in cls.__dataclass_fields__
                  if hasattr(settings, f"alert_{name}")}
        return cls(**values)


@dataclass(frozen=True)
class Finding:
    metric: str  # unsubscribe | complaint | hard_bounce
    severity: str  # warning | critical
    rate: float
    count: int
    delivered: int
    threshold: float
    rule: str
    driver: dict[str, Any] | None

    rule_message: dict[str, Any] | None = None  # the rule as a translatable message

    def text(self, campaign: Campaign, *, paused: bool = False) -> dict[str, Any]:
        """The alert's message: template and params (`english()` gives the text the CLI and API show)."""
        params: dict[str, Any] = {
            "metric": message(METRIC_LABELS[self.metric]), "rate": f"{self.rate:.3%}", "count": self.count,
            "delivered": self.delivered, "campaign_id": campaign.id, "name": campaign.name,
            "rule": self.rule_message or self.rule}
        template = SPIKE
        if self.driver:
            d = self.driver
            template = SPIKE_DRIVEN
            params.update(dimension=message(DIMENSION_LABELS.get(d["dimension"], d["dimension"])),
                          value=coded(d["dimension"], d["value"]), driver_rate=f"{d['rate']:.3%}", driver_count=d["count"],
                          driver_delivered=d["delivered"])
        return message(SPIKE_PAUSED, alert=message(template, **params)) if paused else message(template, **params)

    def message(self, campaign: Campaign) -> str:
        return english(**self.text(campaign))


SPIKE = N_("%(metric)s %(rate)s (%(count)s of %(delivered)s) on campaign %(campaign_id)s “%(name)s” is above %(rule)s")
SPIKE_DRIVEN = N_("%(metric)s %(rate)s (%(count)s of %(delivered)s) on campaign %(campaign_id)s “%(name)s” is "
                  "above %(rule)s; driven by %(dimension)s = %(value)s (%(driver_rate)s, %(driver_count)s of "
                  "%(driver_delivered)s)")
SPIKE_PAUSED = N_("%(alert)s; the campaign was paused")
RULE_CRITICAL = N_("the critical threshold %(limit)s")
RULE_WARNING = N_("the warning threshold %(limit)s")
RULE_BASELINE = N_("%(factor)s × the median of recent sends (%(median)s)")
METRIC_LABELS = {"unsubscribe": N_("unsubscribe rate"), "complaint": N_("complaint rate"),
                 "hard_bounce": N_("hard bounce rate")}
DIMENSION_LABELS = {"stage": N_("stage"), "industry": N_("industry"), "region": N_("region"),
                    "country": N_("country"), "language": N_("language")}


_COUNT = {"unsubscribe": "unsubscribed", "complaint": "complained", "hard_bounce": "hard_bounced"}


def baseline_unsubscribe_rate(session: Session, *, campaign: Campaign, thresholds: Thresholds) -> float | None:
    """Median unsubscribe rate of the last comparable finished sends (same kind), or None if too few."""
    previous = session.scalars(
        select(Campaign.id)
        .where(Campaign.id != campaign.id, Campaign.kind == campaign.kind,
               Campaign.status == CampaignStatus.FINISHED.value)
        .order_by(Campaign.finished_at.desc(), Campaign.id.desc())
        .limit(thresholds.baseline_sends * 3)
    ).all()
    rates: list[float] = []
    for campaign_id in previous:
        r = campaign_rates(session, campaign_id=campaign_id)
        if r.delivered >= thresholds.baseline_min_delivered:
            rates.append(r.unsubscribe_rate)
        if len(rates) == thresholds.baseline_sends:
            break
    return statistics.median(rates) if rates else None


def find_driver(session: Session, *, campaign_id: int, metric: str, overall: Rates) -> dict[str, Any] | None:
    """The audience group whose rate lifts the campaign's most: the first place to look."""
    field_name = _COUNT[metric]
    best: tuple[float, dict[str, Any]] | None = None
    for dimension in DIMENSIONS:
        for group in breakdown(session, dimension=dimension, campaign_id=campaign_id):
            count = getattr(group, field_name)
            if count < 2 or group.delivered < 10 or group.delivered == overall.delivered:
                continue
            rate = group.rate(count)
            # Excess events over what the overall rate predicts: large groups with a real lift win.
            excess = count - overall.rate(getattr(overall, field_name)) * group.delivered
            if excess <= 0:
                continue
            if best is None or excess > best[0]:
                best = (excess, {"dimension": dimension, "value": group.key, "rate": rate,
                                 "count": count, "delivered": group.delivered})
    return best[1] if best else None


def evaluate(session: Session, *, campaign: Campaign, thresholds: Thresholds, final: bool = False) -> list[Finding]:
    """Judge a campaign's rates against the thresholds and its baseline."""
    rates = campaign_rates(session, campaign_id=campaign.id)
    if rates.delivered < thresholds.min_sample and not (final and rates.delivered):
        return []
    findings: list[Finding] = []
    checks = [
        ("unsubscribe", rates.unsubscribe_rate, rates.unsubscribed, thresholds.unsubscribe_warn, thresholds.unsubscribe_critical),
        ("complaint", rates.complaint_rate, rates.complained, thresholds.complaint_warn, thresholds.complaint_critical),
        ("hard_bounce", rates.hard_bounce_rate, rates.hard_bounced, thresholds.hard_bounce_warn, thresholds.hard_bounce_critical),
    ]
    for metric, rate, count, warn, critical in checks:
        if count == 0:
            continue
        severity, limit, rule = None, 0.0, None
        if rate > critical:
            severity, limit, rule = "critical", critical, message(RULE_CRITICAL, limit=f"{critical:.3%}")
        elif rate > warn:
            severity, limit, rule = "warning", warn, message(RULE_WARNING, limit=f"{warn:.3%}")
        elif metric == "unsubscribe" and count >= thresholds.baseline_min_unsubscribes \
                and rates.delivered >= thresholds.baseline_min_delivered:
            median = baseline_unsubscribe_rate(session, campaign=campaign, thresholds=thresholds)
            if median is not None and median > 0 and rate > thresholds.baseline_factor * median:
                severity, limit = "warning", thresholds.baseline_factor * median
                rule = message(RULE_BASELINE, factor=f"{thresholds.baseline_factor:g}", median=f"{median:.3%}")
        if severity and rule:
            driver = find_driver(session, campaign_id=campaign.id, metric=metric, overall=rates)
            findings.append(Finding(metric, severity, rate, count, rates.delivered, limit, english(**rule), driver,
                                    rule))
    return findings


def check_campaign(session: Session, *, campaign_id: int, thresholds: Thresholds, final: bool = False) -> list[Alert]:
    """Record new alerts for a campaign; a critical one pauses it (the circuit breaker)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return []
    existing = {(a.kind, a.severity) for a in session.scalars(select(Alert).where(Alert.campaign_id == campaign_id))}
    created: list[Alert] = []
    for finding in evaluate(session, campaign=campaign, thresholds=thresholds, final=final):
        kind = f"{finding.metric}_spike"
        if (kind, finding.severity) in existing:
            continue
        paused = False
        if finding.severity == "critical" and campaign.status == CampaignStatus.SENDING.value:
            campaign.status = CampaignStatus.PAUSED.value
            paused = True
        text = finding.text(campaign, paused=paused)
        alert = Alert(
            kind=kind, severity=finding.severity, campaign_id=campaign.id, message=english(**text),
            data={"metric": finding.metric, "rate": finding.rate, "count": finding.count,
                  "delivered": finding.delivered, "threshold": finding.threshold, "rule": finding.rule,
                  "driver": finding.driver, "paused": paused, **text},
            created_at=datetime.now(timezone.utc),
        )
        session.add(alert)
        created.append(alert)
    session.flush()
    for alert in created:
        # In the alert's own transaction, like every webhook event (sendwell.webhooks.service).
        emit_alert(session, alert=alert)
    return created


# The events the breaker's rates count as harm: a new one is a reason to judge again.
BREAKER_EVENTS = ("unsubscribed", "complained", "bounced")


def check_sending(session: Session, *, thresholds: Thresholds, seen: dict[int, int]) -> list[Alert]:
    """Judge each sending campaign that got an opt-out, complaint or bounce since the last call.

    `seen` maps a campaign to the highest such event id already judged; updated in place.
    Catches signals that arrive when no deliverer of the campaign is running to judge them.
    """
    sending = session.scalars(select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING.value)).all()
    if not sending:
        return []
    latest = session.execute(
        select(Event.campaign_id, func.max(Event.id))
        .where(Event.kind.in_(BREAKER_EVENTS), Event.campaign_id.in_(sending))
        .group_by(Event.campaign_id)
    ).all()
    created: list[Alert] = []
    for campaign_id, last in latest:
        if seen.get(campaign_id) != last:
            seen[campaign_id] = last
            created.extend(check_campaign(session, campaign_id=campaign_id, thresholds=thresholds))
    return created


def open_alerts(session: Session, *, campaign_id: int | None = None) -> list[Alert]:
    query = select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.id)
    if campaign_id is not None:
        query = query.where(Alert.campaign_id == campaign_id)
    return list(session.scalars(query))


def with_messages(session: Session, *, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alert rows (report dicts with an `id`) with the `template` and `params` their stored data keeps, to translate."""
    ids = [a["id"] for a in alerts]
    stored = dict(session.execute(select(Alert.id, Alert.data).where(Alert.id.in_(ids))).all()) if ids else {}
    out = []
    for row in alerts:
        data = stored.get(row["id"]) or {}
        out.append({**row, "template": data.get("template"), "params": data.get("params")})
    return out


def check_recent(session: Session, *, thresholds: Thresholds, days: int = 14) -> list[Alert]:
    """Re-judge campaigns sending now or finished in the last `days`: opt-outs keep arriving after a send."""
    since = datetime.now(timezone.utc) - timedelta(days=days)
    rows = session.execute(
        select(Campaign.id, Campaign.status).where(
            (Campaign.status.in_((CampaignStatus.SENDING.value, CampaignStatus.PAUSED.value)))
            | ((Campaign.status == CampaignStatus.FINISHED.value) & (Campaign.finished_at >= since))
        )
    ).all()
    created: list[Alert] = []
    for campaign_id, status in rows:
        # A campaign still sending is judged like mid-send (the minimum sample applies): one hard
        # bounce among its first five mails is not a 20 % rate that should pause it.
        final = status != CampaignStatus.SENDING.value
        created.extend(check_campaign(session, campaign_id=campaign_id, thresholds=thresholds, final=final))
    return created


SCHEDULE_FAILED = N_("Campaign %(campaign_id)s (%(name)s) did not start at its scheduled time and is a draft "
                     "again: %(error)s")


def schedule_failed_message(*, campaign_id: int, name: str, error: str) -> dict[str, Any]:
    """The message of a `schedule_failed` alert (the error stays in its own words)."""
    return message(SCHEDULE_FAILED, campaign_id=campaign_id, name=name, error=error)


SENDER_FAULT = "sender_fault"
# What the provider did with the mail, mildest first: a DMARC report with disposition `none`
# refused nothing (the mail was delivered), it only says that authentication failed.
REPORTED, QUARANTINED, REFUSED = "reported", "quarantined", "refused"
OUTCOMES = (REPORTED, QUARANTINED, REFUSED)
SENDER_TEMPLATES = {
    REFUSED: N_("%(provider)s refused the mail: %(fixes)s. Recipients were not suppressed."),
    QUARANTINED: N_("%(provider)s put the mail in spam (DMARC quarantine): %(fixes)s. Recipients were not "
                    "suppressed."),
    REPORTED: N_("%(provider)s reports that the mail failed DMARC, but delivered it: %(fixes)s. Nothing was "
                 "refused; recipients were not suppressed."),
}
_MAX_LISTED = 20  # domains and campaigns kept on one alert: enough to see the spread


def raise_sender_alert(
    session: Session,
    *,
    provider: str,
    topic: str,
    fix: str,
    status: str | None,
    reason: str,
    severity: str,
    domain: str | None = None,
    campaign_id: int | None = None,
    source: str = "bounce",
    now: datetime | None = None,
    fix_message: dict[str, Any] | None = None,
    outcome: str = REFUSED,
) -> Alert:
    """One open sender alert per mailbox provider, with the fix in words; repeats raise its count.

    Blocks (our IP, domain, content or authentication refused) and authentication-failure
    reports both land here: the operator has one thing to fix per provider, not one per mail.
    `fix_message` is `fix` as a translatable message; `outcome` says what the provider did with
    the mail (refused, quarantined, or only reported the failure): the worst one seen heads the alert.
    """
    now = now or datetime.now(timezone.utc)
    fix_message = fix_message or plain(fix)
    open_ = session.scalars(
        select(Alert).where(Alert.kind == SENDER_FAULT, Alert.resolved_at.is_(None))
        .order_by(Alert.id)
    ).all()
    found = next((a for a in open_ if (a.data or {}).get("provider") == provider), None)
    if found is not None:
        data = dict(found.data or {})
        fixes = dict(data.get("fixes", {}))
        fixes.setdefault(topic, fix)
        fix_messages = dict(data.get("fix_messages", {}))
        fix_messages.setdefault(topic, fix_message)
        worst = max(data.get("outcome", REFUSED), outcome, key=OUTCOMES.index)
        text = _sender_message(provider, fixes, fix_messages, worst)
        data.update(count=int(data.get("count", 1)) + 1, fixes=fixes, last_at=now.isoformat(),
                    last_status=status, last_reason=reason,
                    domains=_listed(data.get("domains", []), domain),
                    campaigns=_listed(data.get("campaigns", []), campaign_id),
                    sources=_listed(data.get("sources", []), source), fix_messages=fix_messages, outcome=worst,
                    **text)
        found.data = data  # a new dict: JSON columns do not track in-place changes
        found.message = english(**text)
        if severity == "critical" and found.severity != "critical":
            found.severity = "critical"
        return found
    fixes, fix_messages = {topic: fix}, {topic: fix_message}
    text = _sender_message(provider, fixes, fix_messages, outcome)
    created = Alert(
        kind=SENDER_FAULT, severity=severity, campaign_id=campaign_id, message=english(**text),
        data={"provider": provider, "count": 1, "fixes": fixes, "status": status, "reason": reason,
              "last_status": status, "last_reason": reason, "domains": _listed([], domain),
              "campaigns": _listed([], campaign_id), "sources": [source],
              "first_at": now.isoformat(), "last_at": now.isoformat(), "fix_messages": fix_messages,
              "outcome": outcome, **text},
        created_at=now,
    )
    session.add(created)
    session.flush()  # the id, for the webhook
    emit_alert(session, alert=created, now=now)
    return created


def _listed(items: list[Any], item: Any) -> list[Any]:
    items = list(items)
    if item is not None and item not in items and len(items) < _MAX_LISTED:
        items.append(item)
    return items


def _sender_message(provider: str, fixes: dict[str, str], fix_messages: dict[str, Any],
                    outcome: str) -> dict[str, Any]:
    # A fix stored before fixes kept their message is shown in its stored English words.
    parts = [fix_messages.get(topic) or plain(text) for topic, text in fixes.items()]
    return message(SENDER_TEMPLATES[outcome], provider=provider, fixes=parts)
