"""Why people leave a sequence, per step: survey reasons and advice that names the step."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import (
    Contact,
    Event,
    Send,
    SendState,
    Sequence,
    SequenceEnrollment,
    SequenceStepCampaign,
    SequenceStepRun,
)
from sendwell.i18n.messages import N_, coded, message
from sendwell.insight.rates import REASONS

# The campaigns' rule for "concentrated in one group" serves here with the steps as the groups.
from sendwell.insight.recommendations import (
    MIN_ANSWERS,
    UNKNOWN,
    Recommendation,
    _concentrated,
)

MIN_STEP_SENT = 20  # mails a step (and the other steps together) must have sent before rates are compared
RATE_FACTOR = 2.0  # a step losing readers this many times faster than the others is worth a look
CAP_WAIT_SHARE = 0.25  # a quarter of a step's contacts held by the stage cap is "often"

LEAVE_MORE_TIME = N_("Leave more time before step “%(step)s”")
LEAVE_MORE_TIME_WHY_WAIT = N_("%(count)s of %(total)s people who left this sequence because of too many emails "
                              "left at step “%(step)s”. Lengthen the wait “%(wait)s” before it.")
LEAVE_MORE_TIME_WHY = N_("%(count)s of %(total)s people who left this sequence because of too many emails left "
                         "at step “%(step)s”. Leave more time before it, or leave it out.")
LEAVE_MORE_TIME_WHY_FIRST = N_("%(count)s of %(total)s people who left this sequence because of too many emails "
                               "left at its first mail, step “%(step)s”: they get your other mails too. Start the "
                               "sequence with a wait, or lower the frequency cap of their stage.")
STEP_NOT_RELEVANT = N_("Review who reaches step “%(step)s”")
STEP_NOT_RELEVANT_WHY = N_("%(count)s of %(total)s people who left this sequence as “not relevant to my business” "
                           "left at step “%(step)s”. Review its content, or add a branch so only those it fits "
                           "reach it.")
REVIEW_STEP = N_("Review the content of step “%(step)s”")
REVIEW_STEP_WHY = N_("Step “%(step)s” lost %(rate)s of the people it reached (%(count)s of %(sent)s), %(factor)s× "
                     "the rate of the sequence's other mail steps (%(others_rate)s, %(others_count)s of "
                     "%(others_sent)s). Review its content and its subject.")
REVIEW_STEP_WHY_NONE = N_("Step “%(step)s” lost %(rate)s of the people it reached (%(count)s of %(sent)s), while "
                          "the sequence's other mail steps lost none of %(others_sent)s. Review its content and "
                          "its subject.")
STEP_OVER_CAP = N_("Step “%(step)s” often waits for the stage cap")
STEP_OVER_CAP_WHY = N_("%(count)s of %(runs)s contacts who reached step “%(step)s” were over their stage's "
                       "frequency cap, so its mail waited (most now in stage %(stage)s). Lengthen the wait "
                       "before it so it does not meet your other mails, or review that stage's cap.")


def reasons_by_step(session: Session, *, sequence_id: int) -> dict[str, dict[str, int]]:
    """Per mail step id: people who left from one of its mails (any version), counted by their survey answer."""
    steps = _step_campaigns(sequence_id)
    # Distinct people per step and answer; counted here, as grouping by a JSON field differs per database.
    rows = session.execute(
        select(steps.c.step_id, Event.data["reason"].as_string(), Event.contact_id).distinct()
        .join(Event, Event.campaign_id == steps.c.campaign_id)
        .where(Event.kind == "unsubscribe_reason")
    ).all()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for step_id, reason, _contact_id in rows:
        code = reason if reason in REASONS else "other"
        out[step_id][code] = out[step_id].get(code, 0) + 1
    return {step_id: dict(sorted(counts.items())) for step_id, counts in sorted(out.items())}


def step_recommendations(session: Session, *, sequence_id: int) -> list[Recommendation]:
    """What to change in a sequence, naming the step, with the numbers that justify it."""
    steps = _step_figures(session, sequence_id=sequence_id)
    by_step = reasons_by_step(session, sequence_id=sequence_id)
    out: list[Recommendation] = []
    hit = _concentrated(by_step, "too_many")
    if hit:
        step_id, count, total = hit
        wait = _wait_before(steps, step_id)
        first = next(s["id"] for s in steps if s["kind"] == "mail") == step_id and not wait
        why = (message(LEAVE_MORE_TIME_WHY_WAIT, count=count, total=total, step=step_id, wait=wait) if wait
               else message(LEAVE_MORE_TIME_WHY_FIRST, count=count, total=total, step=step_id) if first
               else message(LEAVE_MORE_TIME_WHY, count=count, total=total, step=step_id))
        out.append(Recommendation.of("sequence_step_wait", message(LEAVE_MORE_TIME, step=step_id), why,
                                     {"step": step_id, "wait": wait, "answers": count, "of": total}))
    hit = _concentrated(by_step, "not_relevant")
    if hit:
        step_id, count, total = hit
        out.append(Recommendation.of(
            "sequence_step_relevance", message(STEP_NOT_RELEVANT, step=step_id),
            message(STEP_NOT_RELEVANT_WHY, count=count, total=total, step=step_id),
            {"step": step_id, "answers": count, "of": total}))
    out.extend(_rate_outliers([s for s in steps if s["kind"] == "mail"]))
    out.extend(_cap_waits(session, sequence_id=sequence_id, steps=steps))
    return out


def _step_campaigns(sequence_id: int) -> Any:
    """(step_id, campaign_id) of every mail step's campaigns, all versions and rounds."""
    return select(SequenceStepCampaign.step_id, SequenceStepCampaign.campaign_id).where(
        SequenceStepCampaign.sequence_id == sequence_id).subquery()


def _step_figures(session: Session, *, sequence_id: int) -> list[dict[str, Any]]:
    """The current definition's steps in order, with runs, mails sent and people who left per step.

    Read from the tables, not through the sequences package: it plans through delivery, which
    judges its rates here, so importing it would close a cycle.
    """
    sequence = session.get(Sequence, sequence_id)
    if sequence is None:
        return []
    campaigns = _step_campaigns(sequence_id)
    runs = dict(session.execute(
        select(SequenceStepRun.step_id, func.count())
        .join(SequenceEnrollment, SequenceEnrollment.id == SequenceStepRun.enrollment_id)
        .where(SequenceEnrollment.sequence_id == sequence_id).group_by(SequenceStepRun.step_id)).all())
    sent = dict(session.execute(
        select(campaigns.c.step_id, func.count()).join(Send, Send.campaign_id == campaigns.c.campaign_id)
        .where(Send.state == SendState.SENT.value).group_by(campaigns.c.step_id)).all())
    left = dict(session.execute(
        select(campaigns.c.step_id, func.count(func.distinct(Event.contact_id)))
        .join(Event, Event.campaign_id == campaigns.c.campaign_id)
        .where(Event.kind == "unsubscribed").group_by(campaigns.c.step_id)).all())
    return [{"id": step["id"], "kind": step["kind"], "runs": runs.get(step["id"], 0),
             "sent": sent.get(step["id"], 0), "unsubscribed": left.get(step["id"], 0)}
            for step in (sequence.definition or {}).get("steps", [])]


def _wait_before(steps: list[dict[str, Any]], step_id: str) -> str | None:
    """The wait step between the previous mail step and this one (the last if several), if any."""
    wait = None
    for step in steps:
        if step["id"] == step_id:
            return wait
        if step["kind"] == "mail":
            wait = None
        elif step["kind"] == "wait":
            wait = step["id"]
    return None


def _rate_outliers(mail_steps: list[dict[str, Any]]) -> list[Recommendation]:
    out = []
    for step in mail_steps:
        count, sent = step["unsubscribed"], step["sent"]
        others_count = sum(s["unsubscribed"] for s in mail_steps if s is not step)
        others_sent = sum(s["sent"] for s in mail_steps if s is not step)
        if count < MIN_ANSWERS or sent < MIN_STEP_SENT or others_sent < MIN_STEP_SENT:
            continue
        rate, others_rate = count / sent, others_count / others_sent
        evidence = {"step": step["id"], "unsubscribed": count, "sent": sent, "rate": round(rate, 4),
                    "others_unsubscribed": others_count, "others_sent": others_sent,
                    "others_rate": round(others_rate, 4)}
        figures = {"step": step["id"], "rate": f"{rate:.1%}", "count": count, "sent": sent,
                   "others_sent": others_sent}
        if others_count == 0:
            why = message(REVIEW_STEP_WHY_NONE, **figures)
        elif rate >= RATE_FACTOR * others_rate:
            evidence["factor"] = round(rate / others_rate, 1)
            why = message(REVIEW_STEP_WHY, **figures, factor=f"{rate / others_rate:.1f}",
                          others_rate=f"{others_rate:.1%}", others_count=others_count)
        else:
            continue
        out.append(Recommendation.of("sequence_step_unsubscribes", message(REVIEW_STEP, step=step["id"]), why,
                                     evidence))
    return out


def _cap_waits(session: Session, *, sequence_id: int, steps: list[dict[str, Any]]) -> list[Recommendation]:
    rows = session.execute(
        select(SequenceStepRun.step_id, Contact.stage, func.count())
        .join(SequenceEnrollment, SequenceEnrollment.id == SequenceStepRun.enrollment_id)
        .outerjoin(Contact, Contact.id == SequenceEnrollment.contact_id)
        .where(SequenceEnrollment.sequence_id == sequence_id, SequenceStepRun.wait_reason == "frequency_cap")
        .group_by(SequenceStepRun.step_id, Contact.stage)
    ).all()
    stages: dict[str, Counter[str]] = defaultdict(Counter)
    for step_id, stage, count in rows:
        stages[step_id][stage or ""] += count
    out = []
    for step in steps:
        waits = stages.get(step["id"])
        count = sum(waits.values()) if waits else 0
        if not waits or count < MIN_ANSWERS or count / max(step["runs"], 1) < CAP_WAIT_SHARE:
            continue
        stage = waits.most_common(1)[0][0]
        out.append(Recommendation.of(
            "sequence_step_over_cap", message(STEP_OVER_CAP, step=step["id"]),
            message(STEP_OVER_CAP_WHY, count=count, runs=step["runs"], step=step["id"],
                    stage=coded("stage", stage) if stage else message(UNKNOWN)),
            {"step": step["id"], "waited": count, "runs": step["runs"], "stage": stage}))
    return out
