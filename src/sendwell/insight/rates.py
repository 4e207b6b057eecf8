"""Rates per campaign and per audience dimension: delivered, opt-outs by method, complaints, bounces, clicks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Campaign, Contact, Event, Send, SendState, Topic

# Audience dimensions a breakdown can be asked for; `topic` and `segment` come from the campaign.
DIMENSIONS = {
    "stage": Contact.stage,
    "industry": Contact.industry,
    "region": Contact.region,
    "country": Contact.country,
    "language": Contact.language,
}
CAMPAIGN_DIMENSIONS = ("campaign", "segment", "topic")
# What the trend charts show per day, and the shortest window they draw.
OVER_TIME_KINDS = ("delivered", "opened", "clicked", "unsubscribed", "complained")
MIN_DAYS = 7
REASONS = ("not_relevant", "too_many", "never_signed_up", "situation_changed", "other")


@dataclass
class Rates:
    """Counts and rates for one group of sends (a campaign, a region, …)."""

    key: str
    delivered: int = 0
    unsubscribed: int = 0
    unsubscribed_by_method: dict[str, int] = field(default_factory=dict)
    complained: int = 0
    hard_bounced: int = 0
    soft_bounced: int = 0
    # People who clicked (opened); scanners and image proxies are counted apart, never as people.
    clicked: int = 0
    opened: int = 0
    machine_clicked: int = 0
    machine_opened: int = 0

    def rate(self, count: int) -> float:
        return count / self.delivered if self.delivered else 0.0

    @property
    def unsubscribe_rate(self) -> float:
        return self.rate(self.unsubscribed)

    @property
    def complaint_rate(self) -> float:
        return self.rate(self.complained)

    @property
    def hard_bounce_rate(self) -> float:
        return self.rate(self.hard_bounced)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "delivered": self.delivered,
            "unsubscribed": self.unsubscribed,
            "unsubscribed_by_method": dict(sorted(self.unsubscribed_by_method.items())),
            "complained": self.complained,
            "hard_bounced": self.hard_bounced,
            "soft_bounced": self.soft_bounced,
            "clicked": self.clicked,
            "opened": self.opened,
            "machine_clicked": self.machine_clicked,
            "machine_opened": self.machine_opened,
            "unsubscribe_rate": round(self.unsubscribe_rate, 6),
            "complaint_rate": round(self.complaint_rate, 6),
            "hard_bounce_rate": round(self.hard_bounce_rate, 6),
            "soft_bounce_rate": round(self.rate(self.soft_bounced), 6),
            "click_rate": round(self.rate(self.clicked), 6),
        }


def _group_column(dimension: str) -> Any:
    if dimension in DIMENSIONS:
        return DIMENSIONS[dimension]
    if dimension == "campaign":
        return Campaign.name
    if dimension == "segment":
        return func.coalesce(func.nullif(Campaign.segment_expr, ""), "(everyone)")
    if dimension == "topic":
        return func.coalesce(Topic.slug, "(no topic)")
    raise ValueError(
        f"unknown dimension {dimension!r} (use one of {', '.join(list(DIMENSIONS) + list(CAMPAIGN_DIMENSIONS))})"
    )


def _scoped(query: Any, campaign_id: int | None) -> Any:
    return query.where(Campaign.id == campaign_id) if campaign_id is not None else query


def breakdown(session: Session, *, dimension: str = "campaign", campaign_id: int | None = None) -> list[Rates]:
    """Rates grouped by one dimension (campaign, segment, topic, stage, industry, region, country, language)."""
    group = _group_column(dimension).label("key")
    delivered_q = (
        select(group, func.count())
        .select_from(Send)
        .join(Campaign, Campaign.id == Send.campaign_id)
        .join(Contact, Contact.id == Send.contact_id)
        .outerjoin(Topic, Topic.id == Campaign.topic_id)
        .where(Send.state == SendState.SENT.value)
        .group_by(group)
    )
    groups: dict[str, Rates] = {}
    for key, count in session.execute(_scoped(delivered_q, campaign_id)):
        groups[str(key)] = Rates(key=str(key), delivered=count)

    bounce_kind = Event.data["kind"].as_string()
    events_q = (
        select(group, Event.kind, Event.method, bounce_kind, Event.machine, func.count(distinct(Event.contact_id)))
        .select_from(Event)
        .join(Campaign, Campaign.id == Event.campaign_id)
        .join(Contact, Contact.id == Event.contact_id)
        .outerjoin(Topic, Topic.id == Campaign.topic_id)
        .where(Event.kind.in_(("unsubscribed", "complained", "bounced", "clicked", "opened")))
        .group_by(group, Event.kind, Event.method, bounce_kind, Event.machine)
    )
    for key, kind, method, kind_detail, machine, count in session.execute(_scoped(events_q, campaign_id)):
        rates = groups.setdefault(str(key), Rates(key=str(key)))
        if kind == "unsubscribed":
            rates.unsubscribed += count
            rates.unsubscribed_by_method[method or "unknown"] = rates.unsubscribed_by_method.get(method or "unknown", 0) + count
        elif kind == "complained":
            rates.complained += count
        elif kind == "bounced":
            if kind_detail == "hard":
                rates.hard_bounced += count
            elif kind_detail == "soft":
                rates.soft_bounced += count
        elif kind == "clicked" and machine:
            rates.machine_clicked += count
        elif kind == "clicked":
            rates.clicked += count
        elif kind == "opened" and machine:
            rates.machine_opened += count
        elif kind == "opened":
            rates.opened += count
    return sorted(groups.values(), key=lambda r: (-r.delivered, r.key))


def campaign_rates(session: Session, *, campaign_id: int) -> Rates:
    """Totals for one campaign."""
    rows = breakdown(session, dimension="campaign", campaign_id=campaign_id)
    return rows[0] if rows else Rates(key=str(campaign_id))


def reasons(session: Session, *, campaign_id: int | None = None, dimension: str | None = None) -> dict[str, Any]:
    """Unsubscribe reasons (from the survey), counted per dimension value, with the free-text answers."""
    reason = Event.data["reason"].as_string()
    text = Event.data["text"].as_string()
    group = _group_column(dimension).label("key") if dimension else None
    columns = [reason, text] + ([group] if group is not None else [])
    query = (
        select(*columns)
        .select_from(Event)
        .outerjoin(Campaign, Campaign.id == Event.campaign_id)
        .outerjoin(Contact, Contact.id == Event.contact_id)
        .outerjoin(Topic, Topic.id == Campaign.topic_id)
        .where(Event.kind == "unsubscribe_reason")
        .order_by(Event.id)
    )
    if campaign_id is not None:
        query = query.where(Event.campaign_id == campaign_id)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    answers: list[dict[str, str]] = []
    for row in session.execute(query):
        code = row[0] if row[0] in REASONS else "other"
        key = str(row[2]) if group is not None else "all"
        counts[key][code] += 1
        if row[1]:
            answers.append({"reason": code, "text": row[1], **({dimension: key} if dimension else {})})
    return {
        "counts": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
        "free_text": answers,
    }


def over_time(session: Session, *, days: int = 90) -> list[dict[str, Any]]:
    """Per calendar day: mails delivered, people who opened or clicked, unsubscribes and complaints.

    Every day of the window is listed, quiet days as zeros: a chart of one busy day between
    empty ones is a spike, not a lone dot. The window is the `days` days up to the last day
    with any activity, and at least a week long.
    """
    day_sent = func.date(Send.sent_at)
    day_event = func.date(Event.occurred_at)
    per_kind: dict[str, dict[str, int]] = {
        "delivered": {str(k): v for k, v in session.execute(
            select(day_sent, func.count()).where(Send.state == SendState.SENT.value).group_by(day_sent))},
    }
    for kind in ("unsubscribed", "complained"):
        per_kind[kind] = {str(k): v for k, v in session.execute(
            select(day_event, func.count()).where(Event.kind == kind).group_by(day_event))}
    for kind in ("opened", "clicked"):
        # People, not fetches: one a day per contact, machines (scanners, image proxies) left out.
        per_kind[kind] = {str(k): v for k, v in session.execute(
            select(day_event, func.count(distinct(Event.contact_id)))
            .where(Event.kind == kind, Event.machine.is_(False), Event.campaign_id.is_not(None))
            .group_by(day_event))}
    seen = sorted({d for counts in per_kind.values() for d in counts if d and d != "None"})
    if not seen:
        return []
    last = date.fromisoformat(seen[-1])
    first = max(date.fromisoformat(seen[0]), last - timedelta(days=days - 1))
    first = min(first, last - timedelta(days=MIN_DAYS - 1))
    span = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    return [{"day": d, **{kind: per_kind[kind].get(d, 0) for kind in OVER_TIME_KINDS}} for d in span]
