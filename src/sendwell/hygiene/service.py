"""List hygiene: one pass of every scheduled job, its report, and the "keep me subscribed" answer.

The jobs (docs/hygiene.md): resume ended pauses, record lapsed CASL implied consent, clear
deferrals that can no longer go out, apply soft-bounce streaks, clean addresses, and the
sunset flow (inactive → one reconfirmation mail → kept, or suppressed with reason `sunset`).
This context decides whom to ask and with which mail; the caller (sendwell.flows) creates
and starts that campaign. Service functions flush and never commit; the CLI command, the
scheduler and the demo commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.contacts.lawful_basis import LIFETIME, expiry_for, has_lawful_basis
from sendwell.content.service import ComplianceError
from sendwell.db.models import (
    SCOPE_ALL,
    AddressFlag,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Consent,
    Contact,
    Event,
    HygieneRun,
    Reengagement,
    Send,
    SendState,
    Subscription,
    Suppression,
    SuppressionReason,
)
from sendwell.feedback.service import SOFT_BOUNCE_LIMIT, soft_bounce_streak
from sendwell.contacts import addresses
from sendwell.insight.engagement import record_engagement
from sendwell.optout.service import suppression_reasons
from sendwell.suppression.service import lift, suppress

SAMPLE = 20  # contact ids kept per job in a run's report: enough to look at, small enough to store
INVALID_ADDRESS = "invalid_address"  # suppression reason (policy/eligibility.py maps it to a skip)
RECONFIRM_SEGMENT = "hygiene = unasked"

# Outcomes of a re-engagement row.
KEPT = "kept"  # clicked "keep me subscribed"
ENGAGED = "engaged"  # any other engagement (click, reply, preference change, API event)
LEFT = "left"  # opted out, complained or bounced meanwhile: never asked again (COMPLIANCE row 19)
NOT_ASKED = "not_asked"  # the reconfirmation mail was skipped (e.g. consent lapsed meanwhile)
SUNSET = SuppressionReason.SUNSET.value

RECONFIRM_SUBJECT = "Do you still want to hear from us?"
RECONFIRM_HTML = """<p>Hello{% if contact.first_name %} {{ contact.first_name }}{% endif %},</p>
<p>we have not heard from you for a while, and we only want to write to people who find our mails useful.</p>
<p><strong>Do you still want to hear from us?</strong> One click is enough:</p>
<p><a href="{{ keep_url }}">Yes, keep me subscribed</a></p>
<p>If we do not hear from you within {{ days }} days, we will stop mailing you. You can come back at any time
from our preference page.</p>
"""


class HygieneError(ValueError):
    """A hygiene request that cannot be carried out (unknown contact, bad date…)."""


@dataclass(frozen=True)
class Reconfirmation:
    """The reconfirmation campaign the sunset flow asks for, as of the pass's time."""

    name: str
    subject: str
    html: str
    segment: str
    kind: str
    over_cap: str
    as_of: datetime


# Creates and starts a campaign (sendwell.flows does, through the one send flow); returns
# its id and the batches of send ids to queue after commit.
StartCampaign = Callable[[Session, Reconfirmation], tuple[int, list[list[int]]]]


@dataclass
class HygieneResult:
    report: dict[str, Any]
    run_id: int | None = None
    # (campaign id, batches of send ids) for the caller to hand to the queue after commit.
    batches: list[tuple[int, list[list[int]]]] = field(default_factory=list)


def _ids(rows: list[int]) -> list[int]:
    return sorted(rows)[:SAMPLE]


def run_pass(
    session: Session, *, settings: Settings, start: StartCampaign, now: datetime | None = None,
    dry_run: bool = False, trigger: str = "cli",
) -> HygieneResult:
    """Run every hygiene job as of `now`; a dry run does the same work in a savepoint and rolls it back.

    Doing the real work and rolling it back (rather than counting with separate queries)
    means the dry run's report is exactly what a real run would do. `start` creates and
    starts the reconfirmation campaign the sunset flow asks for (sendwell.flows.run_hygiene).
    """
    started = datetime.now(timezone.utc)
    now = now or started
    if now.tzinfo is None:
        raise HygieneError("the as-of time must be timezone-aware")
    savepoint = session.begin_nested()
    try:
        jobs: dict[str, Any] = {}
        jobs["pauses"] = resume_pauses(session, now=now)
        jobs["consent_expiry"] = record_consent_expiry(session, now=now)
        jobs["deferrals"] = clear_deferrals(session, settings=settings, now=now)
        jobs["soft_bounces"] = apply_soft_bounce_streaks(session, now=now)
        jobs["addresses"] = clean_addresses(session, settings=settings, now=now)
        jobs["sunset"], batches = sunset_flow(session, settings=settings, now=now, start=start)
    except BaseException:
        savepoint.rollback()
        raise
    if dry_run:
        savepoint.rollback()
        batches = []
    else:
        savepoint.commit()
    report = {"as_of": now.isoformat(), "dry_run": dry_run, "trigger": trigger, "jobs": jobs}
    run = HygieneRun(as_of=now, started_at=started, finished_at=datetime.now(timezone.utc), dry_run=dry_run,
                     trigger=trigger[:20], report=report)
    session.add(run)
    session.flush()
    report["run_id"] = run.id
    return HygieneResult(report=report, run_id=run.id, batches=batches)


def list_runs(session: Session, *, limit: int = 20) -> list[HygieneRun]:
    """The latest hygiene runs, newest first (for the admin and `--json` reports)."""
    return list(session.scalars(select(HygieneRun).order_by(HygieneRun.id.desc()).limit(limit)))


# ---------------------------------------------------------------- pauses
def resume_pauses(session: Session, *, now: datetime) -> dict[str, Any]:
    """Clear `paused_until` once it has passed and record `pause_ended` (the person chose the pause)."""
    rows = session.execute(
        select(Contact.id, Contact.paused_until).where(Contact.paused_until.is_not(None), Contact.paused_until <= now)
    ).all()
    for contact_id, until in rows:
        session.add(Event(kind="pause_ended", contact_id=contact_id, method="hygiene",
                          data={"paused_until": until.isoformat()}, occurred_at=now))
    if rows:
        session.execute(
            update(Contact).where(Contact.id.in_([r[0] for r in rows]), Contact.paused_until <= now)
            .values(paused_until=None).execution_options(synchronize_session="fetch")
        )
    session.flush()
    return {"resumed": len(rows), "contacts": _ids([r[0] for r in rows])}


# ---------------------------------------------------------------- consent expiry
def record_consent_expiry(session: Session, *, now: datetime) -> dict[str, Any]:
    """CASL s10(10): give implied consents their expiry date, and record each one that has lapsed.

    Sending already skips a lapsed consent (policy/eligibility.py); this job makes the lapse
    visible: one `consent_expired` event per consent, so the operator can ask for express consent.
    """
    backfilled = 0
    for consent in session.scalars(
        select(Consent).where(Consent.kind.in_(list(LIFETIME)), Consent.expires_at.is_(None))
    ):
        consent.expires_at = expiry_for(consent.kind, consent.obtained_at)
        backfilled += 1
    session.flush()
    recorded = exists(select(Event.id).where(
        Event.contact_id == Consent.contact_id, Event.kind == "consent_expired",
        Event.data["consent_id"].as_integer() == Consent.id))
    lapsed = session.execute(
        select(Consent.id, Consent.contact_id, Consent.kind, Consent.expires_at).where(
            Consent.withdrawn_at.is_(None), Consent.expires_at.is_not(None), Consent.expires_at <= now, ~recorded)
    ).all()
    for consent_id, contact_id, kind, expires_at in lapsed:
        session.add(Event(kind="consent_expired", contact_id=contact_id, method="hygiene", occurred_at=now,
                          data={"consent_id": consent_id, "kind": kind, "expired_at": expires_at.isoformat()}))
    session.flush()
    return {"expired": len(lapsed), "dates_set": backfilled, "contacts": _ids(list({r[1] for r in lapsed}))}


# ---------------------------------------------------------------- deferrals
def clear_deferrals(session: Session, *, settings: Settings, now: datetime) -> dict[str, Any]:
    """Deferred sends that can no longer go out are skipped, so they stop counting toward caps.

    A deferred send counts as in flight for the frequency caps (policy/eligibility.py): one
    left behind by a cancelled campaign, one whose contact has since been suppressed, or one
    waiting past the give-up age (SENDWELL_RETRY_MAX_AGE_HOURS) would hold a slot for ever.
    """
    deferred = Send.state == SendState.DEFERRED.value
    done: dict[str, list[int]] = {}

    def skip(reason: str, where: Any) -> None:
        ids = list(session.scalars(select(Send.id).where(deferred, where)))
        if ids:
            session.execute(update(Send).where(Send.id.in_(ids), deferred)
                            .values(state=SendState.SKIPPED.value, skip_reason=reason, retry_at=None, updated_at=now)
                            .execution_options(synchronize_session=False))
            done[reason] = ids

    ended = select(Campaign.id).where(Campaign.status.in_([CampaignStatus.CANCELLED.value,
                                                             CampaignStatus.FINISHED.value]))
    skip("cancelled", Send.campaign_id.in_(ended))
    suppressed = exists(select(Suppression.id).join(Contact, Contact.email_hash == Suppression.email_hash).where(
        Contact.id == Send.contact_id, Suppression.scope == SCOPE_ALL))
    skip("suppressed", suppressed)
    too_old = now - timedelta(hours=settings.retry_max_age_hours)
    skip("deferral_expired", and_(Send.retry_at.is_not(None), Send.retry_at < too_old))
    session.flush()
    return {"cleared": sum(map(len, done.values())), "by_reason": {k: len(v) for k, v in done.items()}}


# ---------------------------------------------------------------- soft bounces
def apply_soft_bounce_streaks(session: Session, *, now: datetime) -> dict[str, Any]:
    """COMPLIANCE row 27 on schedule: suppress open streaks the ingest did not (older events, a crash).

    The rule itself is feedback.service.soft_bounce_streak; ingest already applies it to each
    new bounce, so this normally finds nothing.
    """
    suppressed = exists(select(Suppression.id).where(
        Suppression.email_hash == Contact.email_hash, Suppression.scope == SCOPE_ALL))
    candidates = session.scalars(
        select(Contact).join(Event, Event.contact_id == Contact.id)
        .where(Event.kind == "bounced", ~suppressed)
        .group_by(Contact.id).having(func.count(Event.id) >= SOFT_BOUNCE_LIMIT)
    ).all()
    done = []
    for contact in candidates:
        streak = soft_bounce_streak(session, contact=contact)
        if len(streak) >= SOFT_BOUNCE_LIMIT and suppress(
            session, email_hash=contact.email_hash, reason=SuppressionReason.SOFT_BOUNCE_STREAK.value,
            contact_id=contact.id,
        ):
            session.add(Event(kind="suppressed", contact_id=contact.id, method="hygiene", occurred_at=now,
                              data={"reason": SuppressionReason.SOFT_BOUNCE_STREAK.value, "sends": streak}))
            done.append(contact.id)
    session.flush()
    return {"suppressed": len(done), "contacts": _ids(done)}


# ---------------------------------------------------------------- addresses
def clean_addresses(session: Session, *, settings: Settings, now: datetime) -> dict[str, Any]:
    """Check addresses added since the last run: suppress invalid ones, flag role / disposable / typo / no MX.

    Flags never stop mail by themselves; they are segment values (`hygiene = role_address`)
    the operator can look at. An address that fails syntax or IDNA can never be delivered.
    """
    last = session.scalar(
        select(HygieneRun.report).where(HygieneRun.dry_run.is_(False)).order_by(HygieneRun.id.desc()).limit(1))
    start = int(((last or {}).get("jobs", {}).get("addresses", {}) or {}).get("checked_up_to_id", 0) or 0)
    roles = settings.role_address_set
    counts = {addresses.INVALID: 0, addresses.ROLE: 0, addresses.DISPOSABLE: 0, addresses.TYPO: 0,
              addresses.NO_MX: 0}
    invalid: list[int] = []
    top = start
    checked = 0
    while True:
        rows = session.execute(
            select(Contact.id, Contact.email, Contact.email_hash).where(Contact.id > top)
            .order_by(Contact.id).limit(2000)
        ).all()
        if not rows:
            break
        for contact_id, email, email_hash in rows:
            checked += 1
            top = contact_id
            notes = addresses.check_address(email, roles=roles, mx=settings.mx_check)
            for note in notes:
                counts[note.flag] += 1
                if note.flag == addresses.INVALID:
                    if suppress(session, email_hash=email_hash, reason=INVALID_ADDRESS, contact_id=contact_id):
                        session.add(Event(kind="suppressed", contact_id=contact_id, method="hygiene",
                                          occurred_at=now, data={"reason": INVALID_ADDRESS, "detail": note.detail}))
                        invalid.append(contact_id)
                    continue
                exists_ = session.scalar(select(AddressFlag.id).where(
                    AddressFlag.contact_id == contact_id, AddressFlag.flag == note.flag))
                if exists_ is None:
                    session.add(AddressFlag(contact_id=contact_id, flag=note.flag, detail=note.detail[:300],
                                            flagged_at=now))
        session.flush()
    return {"checked": checked, "checked_up_to_id": top, "flagged": counts, "invalid_suppressed": len(invalid),
            "contacts": _ids(invalid)}


# ---------------------------------------------------------------- sunset flow
def _still_subscribed() -> Any:
    """Not on the suppression list and not out of every topic (COMPLIANCE row 19: ask only these)."""
    suppressed = exists(select(Suppression.id).where(
        Suppression.email_hash == Contact.email_hash, Suppression.scope == SCOPE_ALL))
    any_sub = exists(select(Subscription.id).where(Subscription.contact_id == Contact.id))
    active = exists(select(Subscription.id).where(
        Subscription.contact_id == Contact.id, Subscription.status == "subscribed"))
    return and_(~suppressed, or_(~any_sub, active))


def inactive_clause(cutoff: datetime) -> Any:
    """No sign of life since `cutoff`: no engagement, not created, no fresh consent.

    Engagement is a person's: `last_engaged_at` never moves for opens, nor for clicks by link
    scanners or the trap link (sendwell.insight.tracking), so machines cannot keep a contact alive.
    """
    fresh_consent = exists(select(Consent.id).where(
        Consent.contact_id == Contact.id, Consent.withdrawn_at.is_(None), Consent.obtained_at >= cutoff))
    return and_(
        or_(Contact.last_engaged_at.is_(None), Contact.last_engaged_at < cutoff),
        Contact.created_at < cutoff,
        ~fresh_consent,
    )


def sunset_flow(
    session: Session, *, settings: Settings, now: datetime, start: StartCampaign
) -> tuple[dict[str, Any], list[tuple[int, list[list[int]]]]]:
    """Move the sunset flow one step: resolve, mark asked, suppress the unanswered, enter, ask."""
    open_ = Reengagement.resolved_at.is_(None)
    report: dict[str, Any] = {}

    # 1. Engaged since entering (a click, a reply, a preference change, an API event, keep-me).
    engaged = list(session.scalars(
        select(Reengagement.id).join(Contact, Contact.id == Reengagement.contact_id)
        .where(open_, Contact.last_engaged_at.is_not(None), Contact.last_engaged_at > Reengagement.inactive_since)))
    _resolve(session, engaged, ENGAGED, now)
    report["engaged"] = len(engaged)
    # Keep-me clicks resolve their row at once (keep_subscribed); count those since the last pass.
    last = session.scalar(select(func.max(HygieneRun.as_of)).where(HygieneRun.dry_run.is_(False),
                                                                   HygieneRun.as_of < now))
    kept = select(func.count()).select_from(Reengagement).where(Reengagement.outcome == KEPT,
                                                                 Reengagement.resolved_at <= now)
    if last is not None:
        kept = kept.where(Reengagement.resolved_at > last)
    report["kept"] = session.scalar(kept) or 0

    # 2. Left meanwhile (opted out, complained, bounced, left every topic): out of the flow for good.
    left = list(session.scalars(
        select(Reengagement.id).join(Contact, Contact.id == Reengagement.contact_id)
        .where(open_, ~_still_subscribed())))
    _resolve(session, left, LEFT, now)
    report["left"] = len(left)

    # 3. The reconfirmation reached them: the answer window starts at delivery.
    sent = session.execute(
        select(Reengagement.id, Send.sent_at, Campaign.started_at)
        .join(Send, and_(Send.campaign_id == Reengagement.campaign_id, Send.contact_id == Reengagement.contact_id))
        .join(Campaign, Campaign.id == Send.campaign_id)
        .where(open_, Reengagement.asked_at.is_(None), Send.state == SendState.SENT.value)).all()
    for row_id, sent_at, started_at in sent:
        # A mail "sent" after this pass's as-of time belongs to a run in the past (--as-of):
        # then the pass that planned it (the campaign's start) is when they were asked.
        asked = sent_at if sent_at is not None and sent_at <= now else (started_at or now)
        session.execute(update(Reengagement).where(Reengagement.id == row_id).values(asked_at=min(asked, now)))
    report["asked"] = len(sent)
    not_asked = session.execute(
        select(Reengagement.id, Send.skip_reason).join(Send, and_(
            Send.campaign_id == Reengagement.campaign_id, Send.contact_id == Reengagement.contact_id))
        .where(open_, Reengagement.asked_at.is_(None),
               Send.state.in_([SendState.SKIPPED.value, SendState.FAILED.value]))).all()
    _resolve(session, [r[0] for r in not_asked], NOT_ASKED, now)
    reasons: dict[str, int] = {}
    for _, reason in not_asked:
        reasons[reason or "failed"] = reasons.get(reason or "failed", 0) + 1
    report["not_asked"] = {"count": len(not_asked), "by_reason": reasons}

    # 4. No answer within the window: suppressed with reason `sunset`. Reversible only by
    # the person (keep-me link, preference center resubscribe, double opt-in).
    due = session.execute(
        select(Reengagement.id, Reengagement.contact_id, Reengagement.campaign_id, Contact.email_hash)
        .join(Contact, Contact.id == Reengagement.contact_id)
        .where(open_, Reengagement.asked_at.is_not(None),
               Reengagement.asked_at <= now - timedelta(days=settings.reconfirm_days))).all()
    sunset: list[int] = []
    for row_id, contact_id, campaign_id, email_hash in due:
        if suppress(session, email_hash=email_hash, reason=SUNSET, contact_id=contact_id, campaign_id=campaign_id):
            session.add(Event(kind="suppressed", contact_id=contact_id, campaign_id=campaign_id, method="hygiene",
                              occurred_at=now, data={"reason": SUNSET, "reengagement_id": row_id}))
            sunset.append(contact_id)
        _resolve(session, [row_id], SUNSET, now)
    report["sunset"] = len(sunset)
    report["sunset_contacts"] = _ids(sunset)

    # 5. Enter: still subscribed, a lawful basis to mail them, not paused, not launches-only
    # (they asked for launches only; a reconfirmation would not reach them), inactive for the
    # sunset period, and not already through the flow within that period.
    cutoff = now - timedelta(days=settings.sunset_days)
    recent = exists(select(Reengagement.id).where(
        Reengagement.contact_id == Contact.id, or_(open_, Reengagement.entered_at >= cutoff)))
    entering = session.execute(
        select(Contact.id, func.coalesce(Contact.last_engaged_at, Contact.created_at)).where(
            inactive_clause(cutoff), _still_subscribed(), has_lawful_basis(now),
            or_(Contact.paused_until.is_(None), Contact.paused_until <= now),
            Contact.frequency_tier != "launches_only", ~recent)).all()
    for contact_id, since in entering:
        session.add(Reengagement(contact_id=contact_id, inactive_since=since, entered_at=now))
    session.flush()
    report["entered"] = len(entering)
    report["entered_contacts"] = _ids([r[0] for r in entering])

    # 6. Ask: one reconfirmation campaign for everyone not yet asked.
    batches: list[tuple[int, list[list[int]]]] = []
    report["campaign_id"] = None
    unasked = session.scalar(select(func.count()).select_from(Reengagement)
                             .where(open_, Reengagement.campaign_id.is_(None))) or 0
    if unasked:
        try:
            with session.begin_nested():
                campaign_id, queued = _ask(session, settings=settings, now=now, start=start)
        except ComplianceError as exc:
            # The send path's gate holds for hygiene mail too (no DKIM key, no postal address…):
            # nobody is asked, so nobody can be sunset; the other jobs still ran.
            report["blocked"] = [f.message for f in exc.report.findings if f.severity == "error"] or [str(exc)]
        else:
            batches.append((campaign_id, queued))
            report["campaign_id"] = campaign_id
            report["queued"] = sum(map(len, queued))
    report["in_flow"] = session.scalar(select(func.count()).select_from(Reengagement).where(open_)) or 0
    return report, batches


def _resolve(session: Session, row_ids: list[int], outcome: str, now: datetime) -> None:
    if row_ids:
        session.execute(update(Reengagement).where(Reengagement.id.in_(row_ids), Reengagement.resolved_at.is_(None))
                        .values(resolved_at=now, outcome=outcome).execution_options(synchronize_session=False))
        session.flush()


def reconfirmation(*, settings: Settings, now: datetime) -> Reconfirmation:
    """The reconfirmation campaign a pass as of `now` sends to everyone not yet asked."""
    return Reconfirmation(
        name=f"Reconfirmation {now.date().isoformat()}", subject=RECONFIRM_SUBJECT,
        html=RECONFIRM_HTML.replace("{{ days }}", str(settings.reconfirm_days)), segment=RECONFIRM_SEGMENT,
        kind=CampaignKind.RECONFIRMATION.value,
        # Caps still hold for hygiene mail; over the cap it waits instead of never asking.
        over_cap="defer", as_of=now,
    )


def _ask(session: Session, *, settings: Settings, now: datetime,
         start: StartCampaign) -> tuple[int, list[list[int]]]:
    """Have the reconfirmation campaign started for the unasked, and tie their rows to it."""
    campaign_id, batches = start(session, reconfirmation(settings=settings, now=now))
    planned = select(Send.contact_id).where(Send.campaign_id == campaign_id)
    session.execute(update(Reengagement)
                    .where(Reengagement.resolved_at.is_(None), Reengagement.campaign_id.is_(None),
                           Reengagement.contact_id.in_(planned))
                    .values(campaign_id=campaign_id).execution_options(synchronize_session=False))
    session.flush()
    return campaign_id, batches


# ---------------------------------------------------------------- the answer
@dataclass(frozen=True)
class KeepResult:
    status: str  # kept | resubscribed | opted_out
    contact_id: int


def keep_subscribed(
    session: Session, *, contact_id: int, campaign_id: int | None = None, ip: str = "", user_agent: str = "",
    now: datetime | None = None,
) -> KeepResult:
    """The person clicked "keep me subscribed": engagement, out of the flow, and a sunset lifted.

    Only a sunset is lifted: someone who opted out, complained or bounced in another way
    comes back through the unsubscribe page's Undo or a double opt-in, never through this link.
    """
    now = now or datetime.now(timezone.utc)
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise HygieneError(f"no contact with id {contact_id}")
    reasons = suppression_reasons(session, contact=contact)
    if reasons - {SUNSET}:
        return KeepResult("opted_out", contact_id)
    status = "kept"
    if SUNSET in reasons:
        lift(session, email_hash=contact.email_hash, reasons=(SUNSET,))
        session.add(Event(kind="resubscribed", contact_id=contact_id, method="keep_subscribed", ip=ip[:64],
                          user_agent=user_agent[:500], occurred_at=now, data={"lifted": [SUNSET]}))
        status = "resubscribed"
    record_engagement(session, contact_id=contact_id, kind="engaged", campaign_id=campaign_id, occurred_at=now,
                      source="keep_subscribed", data={"ip": ip[:64]})
    rows = list(session.scalars(select(Reengagement.id).where(
        Reengagement.contact_id == contact_id, Reengagement.resolved_at.is_(None))))
    _resolve(session, rows, KEPT, now)
    return KeepResult(status, contact_id)


def reengagement_state(session: Session, *, contact_id: int) -> Reengagement | None:
    """The contact's latest re-engagement row (open or resolved), or None."""
    return session.scalar(select(Reengagement).where(Reengagement.contact_id == contact_id)
                          .order_by(Reengagement.id.desc()).limit(1))
