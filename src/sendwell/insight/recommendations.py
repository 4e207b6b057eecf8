"""Rule-based, explained recommendations from why people leave and where."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Contact, Event
from sendwell.insight.rates import breakdown, reasons

MIN_ANSWERS = 3  # fewer survey answers than this say nothing about a group
CONCENTRATION = 0.5  # a group holding at least half of one reason's answers is "concentrated"


@dataclass(frozen=True)
class Recommendation:
    code: str
    title: str
    why: str
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "why": self.why, "evidence": self.evidence}


def _concentrated(counts: dict[str, dict[str, int]], reason: str) -> tuple[str, int, int] | None:
    per_group = {group: c.get(reason, 0) for group, c in counts.items()}
    total = sum(per_group.values())
    if total < MIN_ANSWERS:
        return None
    group, count = max(per_group.items(), key=lambda kv: kv[1])
    if count >= MIN_ANSWERS and count / total >= CONCENTRATION:
        return group, count, total
    return None


def recommend(session: Session, *, campaign_id: int | None = None, stage_caps: dict[str, str] | None = None) -> list[Recommendation]:
    """What to change, with the numbers that justify it."""
    out: list[Recommendation] = []
    by_stage = reasons(session, campaign_id=campaign_id, dimension="stage")["counts"]
    hit = _concentrated(by_stage, "too_many")
    if hit:
        stage, count, total = hit
        cap = (stage_caps or {}).get(stage)
        out.append(Recommendation(
            "lower_stage_cap", f"Send fewer mails to the “{stage}” stage",
            f"{count} of {total} people who left because of too many emails were in stage {stage}"
            + (f"; its cap is {cap}" if cap else "") + ". Lower that stage's frequency cap, or offer the monthly tier.",
            {"stage": stage, "answers": count, "of": total},
        ))
    by_industry = reasons(session, campaign_id=campaign_id, dimension="industry")["counts"]
    hit = _concentrated(by_industry, "not_relevant")
    if hit:
        industry, count, total = hit
        out.append(Recommendation(
            "review_targeting", f"Review targeting for the {industry or 'unknown'} industry",
            f"{count} of {total} “not relevant to my business” answers came from {industry or 'contacts without an industry'}. "
            "Segment them out of general campaigns or send them content for their trade.",
            {"industry": industry, "answers": count, "of": total},
        ))
    never = _never_signed_up_sources(session, campaign_id=campaign_id)
    if never:
        source, count, total = never
        out.append(Recommendation(
            "review_consent_source", f"Check the consent behind “{source}”",
            f"{count} of {total} people who said they never signed up came from the source “{source}”. "
            "Verify how those addresses were collected; consider a reconfirmation campaign for that source.",
            {"source": source, "answers": count, "of": total},
        ))
    for group in breakdown(session, dimension="region", campaign_id=campaign_id):
        if group.delivered >= 50 and group.complaint_rate > 0.003:
            out.append(Recommendation(
                "complaints_in_region", f"Complaints are high in region {group.key}",
                f"{group.complained} complaints on {group.delivered} mails ({group.complaint_rate:.2%}; "
                "mailbox providers act at 0.3 %). Check consent for that region and make the unsubscribe link prominent.",
                {"region": group.key, "complaint_rate": group.complaint_rate},
            ))
    changed = sum(c.get("situation_changed", 0) for c in by_stage.values())
    if changed >= MIN_ANSWERS:
        out.append(Recommendation(
            "normal_churn", "Some leavers changed role or business",
            f"{changed} people left because their situation changed: normal churn. Keep the list fresh with the "
            "sunset flow rather than mailing them more.",
            {"answers": changed},
        ))
    return out


def _never_signed_up_sources(session: Session, *, campaign_id: int | None) -> tuple[str, int, int] | None:
    query = (
        select(Contact.source, func.count())
        .join(Event, Event.contact_id == Contact.id)
        .where(Event.kind == "unsubscribe_reason", Event.data["reason"].as_string() == "never_signed_up")
        .group_by(Contact.source)
    )
    if campaign_id is not None:
        query = query.where(Event.campaign_id == campaign_id)
    counts = Counter({source or "(unknown)": n for source, n in session.execute(query)})
    total = sum(counts.values())
    if total < MIN_ANSWERS:
        return None
    source, count = counts.most_common(1)[0]
    return (source, count, total) if count / total >= CONCENTRATION else None
