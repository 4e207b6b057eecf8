"""Use cases that cross contexts: starting and scheduling sends, test mails, and the hygiene pass."""

from __future__ import annotations

import email
import email.policy
import logging
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from sendwell.campaigns.service import (
    CampaignError,
    claim_scheduled,
    create_campaign,
    due_scheduled,
    get_campaign,
    schedule_campaign,
)
from sendwell.config import Settings
from sendwell.contacts.fields import normalise_email
from sendwell.content.render import TemplateError
from sendwell.content.service import (
    ComplianceError,
    ContentError,
    assert_sendable,
    lint_campaign,
    preview_campaign,
)
from sendwell.db.models import Alert, Campaign, CampaignStatus
from sendwell.db.session import transaction
from sendwell.deliverability.service import assert_domain_ready, gate
from sendwell.delivery.planning import SendPlan, plan_campaign, preview_plan, queue_campaign
from sendwell.delivery.progress import finish_if_done
from sendwell.hygiene.scheduler import JOB as HYGIENE_JOB
from sendwell.hygiene.scheduler import claim_turn, finish_turn, holder_name
from sendwell.hygiene.service import HygieneResult, Reconfirmation, run_pass
from sendwell.i18n.messages import english
from sendwell.insight.alerts import schedule_failed_message
from sendwell.segments.expression import SegmentError
from sendwell.segments.service import count_segment
from sendwell.webhooks.service import emit_alert

log = logging.getLogger("sendwell.flows")


def start_sending(
    session: Session, *, settings: Settings, campaign_id: int, now: datetime | None = None
) -> list[list[int]]:
    """Gate, plan and queue a campaign; returns the batches of send ids to hand to the queue.

    The blocking compliance lint runs first (content.service.ComplianceError: nothing is
    planned), then the plan with the configured frequency policy, then the queue step. One
    function, so no entry point can skip the gate or plan with the wrong caps. `now` plans as
    of another time (the hygiene pass's --as-of).
    """
    campaign = get_campaign(session, campaign_id=campaign_id)
    assert_sendable(session, settings=settings, campaign_id=campaign_id)
    # The sender domain's SPF/DKIM/DMARC, checked again here when the cached result is older than its TTL.
    assert_domain_ready(session, settings=settings, campaign=campaign)
    plan_campaign(session, campaign=campaign, settings=settings, now=now)
    batches = queue_campaign(session, campaign=campaign, batch_size=settings.batch_size)
    if not batches:
        # Nobody to mail now or later (everyone skipped, or an empty segment): the campaign is
        # finished at once, its skipped sends recording why, instead of `sending` forever.
        finish_if_done(session, campaign_id=campaign_id)
    return batches


def plan_preview(session: Session, *, settings: Settings, campaign_id: int, now: datetime | None = None) -> SendPlan:
    """What start_sending would do now (or at `now`, for a schedule), written nowhere.

    The same lint, sender-domain gate and planner run inside a savepoint that is rolled back:
    findings that would block the send are reported in the plan, not raised.
    """
    campaign = get_campaign(session, campaign_id=campaign_id)
    if campaign.status == CampaignStatus.PAUSED.value:  # as every send entry point refuses it
        raise CampaignError(f"campaign {campaign_id} is paused: resume it instead")
    savepoint = session.begin_nested()  # the domain check may refresh its cached result: keep nothing
    try:
        findings = [f.as_dict() for f in lint_campaign(session, settings=settings, campaign_id=campaign_id).findings]
        findings += [f.as_dict() for f in gate(session, settings=settings, campaign=campaign).findings]
        plan = preview_plan(session, campaign=campaign, settings=settings, now=now)
        plan.reachable = count_segment(session, expression=campaign.segment_expr, now=now)["reachable"]
    finally:
        savepoint.rollback()
    plan.findings = findings
    return plan


def schedule_sending(session: Session, *, settings: Settings, campaign_id: int, at: datetime,
                     now: datetime | None = None) -> Any:
    """Give a draft a start time, after the same blocking compliance lint a send runs.

    The lint runs again when the campaign starts (settings may change in between); if it
    blocks then, the campaign goes back to draft and a critical alert says why.
    """
    campaign = get_campaign(session, campaign_id=campaign_id)  # a missing campaign is named before the lint
    assert_sendable(session, settings=settings, campaign_id=campaign_id)
    assert_domain_ready(session, settings=settings, campaign=campaign)
    return schedule_campaign(session, campaign_id=campaign_id, at=at, now=now)


def start_due_campaigns(factory: sessionmaker[Session], *, settings: Settings,
                        now: datetime | None = None) -> list[tuple[int, list[list[int]]]]:
    """Start every scheduled campaign whose time has come; returns (campaign id, batches) to enqueue.

    Each campaign starts in its own transaction, claimed by a conditional UPDATE so that one
    of several scanning workers starts it. A campaign that can no longer be sent (the lint
    blocks, its segment no longer compiles) goes back to draft with a critical alert, which
    the dashboard lists and the alert webhook carries; a database error leaves it scheduled
    for the next scan.
    """
    now = now or datetime.now(timezone.utc)
    with transaction(factory) as session:
        due = due_scheduled(session, now=now)
    started: list[tuple[int, list[list[int]]]] = []
    for campaign_id in due:
        try:
            with transaction(factory) as session:
                if not claim_scheduled(session, campaign_id=campaign_id):
                    continue  # another worker started it
                batches = start_sending(session, settings=settings, campaign_id=campaign_id)
            started.append((campaign_id, batches))
            log.info("scheduled campaign %s started: %d batches", campaign_id, len(batches))
        except (ComplianceError, ContentError, TemplateError, SegmentError, CampaignError) as exc:
            with transaction(factory) as session:
                campaign = session.get(Campaign, campaign_id)
                if campaign is None or campaign.status != CampaignStatus.SCHEDULED.value:
                    continue
                planned_for = campaign.scheduled_at
                campaign.status, campaign.scheduled_at = CampaignStatus.DRAFT.value, None
                text = schedule_failed_message(campaign_id=campaign_id, name=campaign.name, error=str(exc))
                alert = Alert(kind="schedule_failed", severity="critical", campaign_id=campaign_id,
                              message=english(**text),
                              data={"scheduled_at": planned_for.isoformat() if planned_for else None,
                                    "error": str(exc), **text},
                              created_at=now)
                session.add(alert)
                session.flush()
                emit_alert(session, alert=alert, now=now)
            log.warning("scheduled campaign %s did not start: %s", campaign_id, exc)
    return started


def send_test(session: Session, *, settings: Settings, campaign_id: int, to: str, signer: object | None,
              transport: object) -> dict[str, str]:
    """Mail the campaign as rendered for its first sample recipient to `to`, marked as a test.

    Nothing is planned or recorded: no send row, no event, no frequency-cap use. The links
    in a test mail are preview links, so they do not unsubscribe anyone.
    """
    address = normalise_email(to)  # ValueError names what is wrong
    rendered = next((p for p in preview_campaign(session, settings=settings, campaign_id=campaign_id)
                     if "eml" in p), None)
    if rendered is None:
        raise ContentError("the campaign cannot be rendered for any sample recipient; see the compliance check")
    message = email.message_from_bytes(rendered["eml"].encode("ascii", "replace"), policy=email.policy.SMTP)
    message.replace_header("To", address)
    message.replace_header("Subject", f"[TEST] {rendered['subject']}")
    data = message.as_bytes()
    if signer is not None:
        data = signer.sign(data) + data  # type: ignore[attr-defined]
    outcome = transport.send(parseaddr(settings.from_)[1], address, data)  # type: ignore[attr-defined]
    return {"to": address, "sample": rendered["label"], "status": outcome.status, "message": outcome.message}


def run_hygiene(session: Session, *, settings: Settings, now: datetime | None = None, dry_run: bool = False,
                trigger: str = "cli") -> HygieneResult:
    """One hygiene pass; the reconfirmation campaign its sunset flow asks for starts through start_sending.

    The CLI's `hygiene run`, the scheduler and the demo all run the pass through here, so the
    reconfirmation mail passes the same compliance gate, plan and caps as any campaign.
    """

    def start(session: Session, ask: Reconfirmation) -> tuple[int, list[list[int]]]:
        campaign = create_campaign(session, settings=settings, name=ask.name, subject=ask.subject, html=ask.html,
                                   segment=ask.segment, kind=ask.kind, over_cap=ask.over_cap)
        return campaign.id, start_sending(session, settings=settings, campaign_id=campaign.id, now=ask.as_of)

    return run_pass(session, settings=settings, start=start, now=now, dry_run=dry_run, trigger=trigger)


def run_hygiene_if_due(
    factory: sessionmaker[Session], *, settings: Settings, holder: str | None = None, now: datetime | None = None,
) -> HygieneResult | None:
    """Run the hygiene pass if it is due and this process wins the lease (hygiene.scheduler); None otherwise."""
    interval = settings.hygiene_interval_hours
    if interval <= 0:
        return None
    holder = holder or holder_name()
    now = now or datetime.now(timezone.utc)
    with transaction(factory) as session:
        if not claim_turn(session, name=HYGIENE_JOB, holder=holder, now=now):
            return None
    try:
        with transaction(factory) as session:
            result = run_hygiene(session, settings=settings, now=now, trigger="scheduler")
    except BaseException:
        with transaction(factory) as session:
            finish_turn(session, name=HYGIENE_JOB, holder=holder, next_run_at=None)
        raise
    with transaction(factory) as session:
        finish_turn(session, name=HYGIENE_JOB, holder=holder, next_run_at=now + timedelta(hours=interval))
    return result
