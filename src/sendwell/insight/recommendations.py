"""Rule-based, explained recommendations from why people leave and where."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Contact, Event
from sendwell.i18n.messages import N_, coded, english, message
from sendwell.insight.rates import breakdown, reasons

MIN_ANSWERS = 3  # fewer survey answers than this say nothing about a group
CONCENTRATION = 0.5  # a group holding at least half of one reason's answers is "concentrated"


@dataclass(frozen=True)
class Recommendation:
    code: str
    title: str
    why: str
    evidence: dict[str, Any]
    title_message: dict[str, Any] | None = None  # title and why as translatable messages
    why_message: dict[str, Any] | None = None

    @classmethod
    def of(cls, code: str, title: dict[str, Any], why: dict[str, Any], evidence: dict[str, Any]) -> Recommendation:
        """A recommendation from its title and why as messages (the English text is kept beside them)."""
        return cls(code, english(**title), english(**why), evidence, title, why)

    def as_dict(self) -> dict[str, Any]:
        out = {"code": self.code, "title": self.title, "why": self.why, "evidence": self.evidence}
        for name, msg in (("title", self.title_message), ("why", self.why_message)):
            if msg:
                out.update({f"{name}_template": msg["template"], f"{name}_params": msg["params"]})
        return out


LOWER_STAGE_CAP = N_("Send fewer mails to the “%(stage)s” stage")
LOWER_STAGE_CAP_WHY = N_("%(count)s of %(total)s people who left because of too many emails were in stage "
                         "%(stage)s. Lower that stage's frequency cap, or offer the monthly tier.")
LOWER_STAGE_CAP_WHY_CAP = N_("%(count)s of %(total)s people who left because of too many emails were in stage "
                             "%(stage)s; its cap is %(cap)s. Lower that stage's frequency cap, or offer the "
                             "monthly tier.")
REVIEW_TARGETING = N_("Review targeting for the %(industry)s industry")
REVIEW_TARGETING_WHY = N_("%(count)s of %(total)s “not relevant to my business” answers came from %(industry)s. "
                          "Segment them out of general campaigns or send them content for their trade.")
UNKNOWN = N_("unknown")
UNKNOWN_SOURCE = N_("(unknown)")  # contacts without a recorded source
NO_INDUSTRY = N_("contacts without an industry")
REVIEW_CONSENT = N_("Check the consent behind “%(source)s”")
REVIEW_CONSENT_WHY = N_("%(count)s of %(total)s people who said they never signed up came from the source "
                        "“%(source)s”. Verify how those addresses were collected; consider a reconfirmation "
                        "campaign for that source.")
REGION_COMPLAINTS = N_("Complaints are high in region %(region)s")
REGION_COMPLAINTS_WHY = N_("%(complaints)s complaints on %(delivered)s mails (%(rate)s; mailbox providers act at "
                           "0.3 %%). Check consent for that region and make the unsubscribe link prominent.")
NORMAL_CHURN = N_("Some leavers changed role or business")
NORMAL_CHURN_WHY = N_("%(count)s people left because their situation changed: normal churn. Keep the list fresh "
                      "with the sunset flow rather than mailing them more.")


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
        named = coded("stage", stage)
        why = (message(LOWER_STAGE_CAP_WHY_CAP, count=count, total=total, stage=named, cap=cap) if cap
               else message(LOWER_STAGE_CAP_WHY, count=count, total=total, stage=named))
        out.append(Recommendation.of(
            "lower_stage_cap", message(LOWER_STAGE_CAP, stage=named), why,
            {"stage": stage, "answers": count, "of": total},
        ))
    by_industry = reasons(session, campaign_id=campaign_id, dimension="industry")["counts"]
    hit = _concentrated(by_industry, "not_relevant")
    if hit:
        industry, count, total = hit
        out.append(Recommendation.of(
            "review_targeting", message(REVIEW_TARGETING, industry=coded("industry", industry) if industry
                                        else message(UNKNOWN)),
            message(REVIEW_TARGETING_WHY, count=count, total=total,
                    industry=coded("industry", industry) if industry else message(NO_INDUSTRY)),
            {"industry": industry, "answers": count, "of": total},
        ))
    never = _never_signed_up_sources(session, campaign_id=campaign_id)
    if never:
        source, count, total = never
        named: Any = message(UNKNOWN_SOURCE) if source == UNKNOWN_SOURCE else source
        out.append(Recommendation.of(
            "review_consent_source", message(REVIEW_CONSENT, source=named),
            message(REVIEW_CONSENT_WHY, count=count, total=total, source=named),
            {"source": source, "answers": count, "of": total},
        ))
    for group in breakdown(session, dimension="region", campaign_id=campaign_id):
        if group.delivered >= 50 and group.complaint_rate > 0.003:
            out.append(Recommendation.of(
                "complaints_in_region", message(REGION_COMPLAINTS, region=coded("region", group.key)),
                message(REGION_COMPLAINTS_WHY, complaints=group.complained, delivered=group.delivered,
                        rate=f"{group.complaint_rate:.2%}"),
                {"region": group.key, "complaint_rate": group.complaint_rate},
            ))
    changed = sum(c.get("situation_changed", 0) for c in by_stage.values())
    if changed >= MIN_ANSWERS:
        out.append(Recommendation.of(
            "normal_churn", message(NORMAL_CHURN), message(NORMAL_CHURN_WHY, count=changed),
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
    counts = Counter({source or UNKNOWN_SOURCE: n for source, n in session.execute(query)})
    total = sum(counts.values())
    if total < MIN_ANSWERS:
        return None
    source, count = counts.most_common(1)[0]
    return (source, count, total) if count / total >= CONCENTRATION else None
