"""Who may receive a campaign: one SQL expression used when planning and again when sending."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from sendwell.contacts.lawful_basis import has_expired_basis, has_lawful_basis
from sendwell.db.models import (
    SCOPE_ALL,
    Campaign,
    CampaignKind,
    Contact,
    SendState,
    Send,
    Subscription,
    Suppression,
    SuppressionReason,
)
from sendwell.policy.caps import FrequencyPolicy

# Skip reasons recorded on `sends.skip_reason` (the vocabulary is documented in docs/policy.md).
# Suppressions keep their specific reason where it tells the operator more than "suppressed".
SUPPRESSION_SKIP = {
    SuppressionReason.UNSUBSCRIBE.value: "unsubscribed",
    SuppressionReason.COMPLAINT.value: "complained",
    SuppressionReason.HARD_BOUNCE.value: "bounced",
    SuppressionReason.SOFT_BOUNCE_STREAK.value: "soft_bounce_streak",
    SuppressionReason.SUNSET.value: "sunset",
    SuppressionReason.MANUAL.value: "suppressed",
    SuppressionReason.ERASED.value: "erased",
    "invalid_address": "invalid_address",  # hygiene may suppress undeliverable syntax
}
SKIP_SUPPRESSED = "suppressed"  # any other suppression reason
SKIP_UNSUBSCRIBED_TOPIC = "unsubscribed_topic"
SKIP_NOT_SUBSCRIBED = "not_subscribed_to_topic"
SKIP_INVALID_ADDRESS = "invalid_address"
SKIP_NO_CONSENT = "no_consent"
SKIP_CONSENT_EXPIRED = "consent_expired"
SKIP_LAUNCHES_ONLY = "launches_only"
SKIP_PAUSED = "paused"
SKIP_FREQUENCY_CAP = "frequency_cap"
# Not skips but reasons a send waits (state `deferred`, retry_at set).
DEFER_FREQUENCY_CAP = SKIP_FREQUENCY_CAP
DEFER_SEND_WINDOW = "send_window"

SKIP_REASONS = (
    *dict.fromkeys(SUPPRESSION_SKIP.values()), SKIP_SUPPRESSED, SKIP_UNSUBSCRIBED_TOPIC, SKIP_NOT_SUBSCRIBED,
    SKIP_INVALID_ADDRESS, SKIP_NO_CONSENT, SKIP_CONSENT_EXPIRED, SKIP_LAUNCHES_ONLY, SKIP_PAUSED,
    SKIP_FREQUENCY_CAP,
)
# What people read for each skip or defer reason (English; the admin translates these msgids).
SKIP_LABELS = {
    "unsubscribed": "Unsubscribed", "complained": "Complained (spam report)", "bounced": "Bounced",
    "soft_bounce_streak": "Repeated soft bounces", "sunset": "No answer to reconfirmation",
    "suppressed": "Suppressed", "erased": "Erased on request", SKIP_INVALID_ADDRESS: "Invalid address",
    SKIP_UNSUBSCRIBED_TOPIC: "Unsubscribed from the topic", SKIP_NOT_SUBSCRIBED: "Not subscribed to the topic",
    SKIP_NO_CONSENT: "No lawful basis", SKIP_CONSENT_EXPIRED: "Consent expired",
    SKIP_LAUNCHES_ONLY: "Wants product launches only", SKIP_PAUSED: "Paused by the recipient",
    SKIP_FREQUENCY_CAP: "Frequency cap", DEFER_SEND_WINDOW: "Outside the sending window",
    "warm_up": "Over today's warm-up allowance", "retry": "Retry after a temporary failure",
}


def skip_label(reason: str | None) -> str:
    """The English label of a skip or defer reason; an unknown reason as it is."""
    return SKIP_LABELS.get(reason or "retry", reason or "")


# A send that may still go out: it counts toward caps as if it went out now.
IN_FLIGHT = (SendState.PLANNED.value, SendState.QUEUED.value, SendState.SENDING.value, SendState.DEFERRED.value)


def skip_reason(
    campaign: Campaign,
    topic_slug: str | None,
    now: datetime,
    *,
    policy: FrequencyPolicy | None = None,
    before: ColumnElement[int] | None = None,
) -> ColumnElement[str | None]:
    """A column expression over `contacts`: NULL when eligible, else the reason to skip.

    `before` is the outer send's id when re-checking at claim time: only in-flight sends
    planned before it count toward the cap (see `_cap_clause`). Without it (planning), every
    in-flight send of other campaigns counts.
    """
    policy = policy or FrequencyPolicy.from_json(campaign.policy)
    kind = campaign.kind
    whens: list[tuple[ColumnElement[bool], ColumnElement[str] | str]] = []
    # COMPLIANCE rule 19: invalid or not, nobody on the suppression list is mailed, whatever
    # the campaign kind; the suppression wins so its reason is the one recorded.
    whens.append((or_(~Contact.email.like("%_@_%"), Contact.email.like("% %")), literal(SKIP_INVALID_ADDRESS)))
    if kind != CampaignKind.TRANSACTIONAL.value:
        whens.extend(_consent_clause(now))
    if campaign.topic_id is not None:
        whens.append(_topic_clause(campaign.topic_id))
    elif kind == CampaignKind.RECONFIRMATION.value:
        # Hygiene mail goes to still-subscribed contacts only: someone who left every topic on
        # the preference center is not asked to reconfirm.
        any_sub = exists(select(Subscription.id).where(Subscription.contact_id == Contact.id))
        active = exists(select(Subscription.id).where(
            Subscription.contact_id == Contact.id, Subscription.status == "subscribed"))
        whens.append((and_(any_sub, ~active), literal(SKIP_UNSUBSCRIBED_TOPIC)))
    if kind not in (CampaignKind.TRANSACTIONAL.value, CampaignKind.LAUNCH.value):
        whens.append((Contact.frequency_tier == "launches_only", literal(SKIP_LAUNCHES_ONLY)))
    if kind != CampaignKind.TRANSACTIONAL.value:
        # A pause is the recipient's own choice on the unsubscribe page; it holds for every
        # kind but transactional, and ends by itself when paused_until passes.
        whens.append((and_(Contact.paused_until.is_not(None), Contact.paused_until > now), literal(SKIP_PAUSED)))
        capped = _cap_clause(policy, campaign, now, before)
        if capped is not None:
            whens.append((capped, literal(SKIP_FREQUENCY_CAP)))
    # COALESCE evaluates the suppression lookup once per contact and the rest only when it is NULL.
    return func.coalesce(_suppression_reason(topic_slug), case(*whens, else_=None))


def _suppression_reason(topic_slug: str | None) -> ColumnElement[str | None]:
    scopes = [SCOPE_ALL] + ([topic_slug] if topic_slug else [])
    label = case(
        (and_(Suppression.scope != SCOPE_ALL, Suppression.reason == SuppressionReason.UNSUBSCRIBE.value),
         literal(SKIP_UNSUBSCRIBED_TOPIC)),
        else_=case(SUPPRESSION_SKIP, value=Suppression.reason, else_=literal(SKIP_SUPPRESSED)),
    )
    return (
        select(label)
        .where(Suppression.email_hash == Contact.email_hash, Suppression.scope.in_(scopes))
        .order_by(Suppression.id)
        .limit(1)
        .scalar_subquery()
    )


def _consent_clause(now: datetime) -> list[tuple[ColumnElement[bool], ColumnElement[str]]]:
    """A lawful basis for the contact's country (contacts/lawful_basis.py).

    A lapsed basis of a kind the country accepts (CASL s10(10) implied consent) is reported
    apart from no basis at all, so the operator knows to ask for reconfirmation.
    """
    has_basis = has_lawful_basis(now)
    return [(~has_basis, case((has_expired_basis(now), literal(SKIP_CONSENT_EXPIRED)), else_=literal(SKIP_NO_CONSENT)))]


def _topic_clause(topic_id: int) -> tuple[ColumnElement[bool], ColumnElement[str]]:
    subscribed = exists(select(Subscription.id).where(
        Subscription.contact_id == Contact.id, Subscription.topic_id == topic_id,
        Subscription.status == "subscribed",
    ))
    left = exists(select(Subscription.id).where(
        Subscription.contact_id == Contact.id, Subscription.topic_id == topic_id,
        Subscription.status != "subscribed",
    ))
    return (~subscribed, case((left, literal(SKIP_UNSUBSCRIBED_TOPIC)), else_=literal(SKIP_NOT_SUBSCRIBED)))


def _cap_clause(
    policy: FrequencyPolicy, campaign: Campaign, now: datetime, before: ColumnElement[int] | None
) -> ColumnElement[bool] | None:
    """True when one more mail would break a stage cap or the recipient's tier.

    Counted: mails sent inside each rolling window, plus in-flight sends (planned, queued,
    sending, deferred) as if they went out now — otherwise a campaign planned while
    another is still queued would see a clean history and both would go out. At claim time
    only in-flight sends with a lower id count: ids follow planning order, so the earlier
    campaign keeps its place and two deferred sends can never wait on each other forever.
    Transactional mail neither counts nor is counted.
    """
    windows = policy.windows_in_use()
    if not windows:
        return None
    s = aliased(Send)
    in_flight = s.state.in_(IN_FLIGHT)
    in_flight = and_(in_flight, s.id < before) if before is not None else and_(in_flight, s.campaign_id != campaign.id)
    transactional = select(Campaign.id).where(Campaign.kind == CampaignKind.TRANSACTIONAL.value)
    hits: list[ColumnElement[bool]] = []
    for window in windows:
        cutoff = now - timedelta(seconds=window)
        count = func.sum(case((s.state != SendState.SENT.value, 1), (s.sent_at > cutoff, 1), else_=0))
        stage = {k: c.count for k, c in policy.stage_caps.items() if c.window == window}
        tier = {k: c.count for k, c in policy.tier_caps.items() if c.window == window}
        if stage:
            hits.append(count >= case(stage, value=Contact.stage, else_=None))
        if tier:
            hits.append(count >= case(tier, value=Contact.frequency_tier, else_=None))
    oldest = now - timedelta(seconds=max(windows))
    return (
        select(or_(*hits))
        .where(
            s.contact_id == Contact.id,
            s.campaign_id.not_in(transactional),
            or_(and_(s.state == SendState.SENT.value, s.sent_at > oldest), in_flight),
        )
        .scalar_subquery()
    )
